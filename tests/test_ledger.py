"""The ledger on SQLite and on PostgreSQL: hard limits under concurrency, idempotent money
movements, books that add up, migrations, billing periods."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import inspect, text

from contracts.errors import QuotaExceededError
from ledger.audit import verify
from ledger.db import (
    LedgerNotMigratedError,
    create_ledger_engine,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade,
)
from ledger.run_records import RunRecords
from ledger.service import Ledger, billing_period

PRICE = Decimal("0.03")


def reserve(
    ledger: Ledger,
    user: str,
    op: str,
    *,
    units: int = 1,
    price: Decimal = PRICE,
    category: str = "images",
):
    return ledger.reserve(
        reservation_id=f"res:{op}",
        operation_id=op,
        user_id=user,
        category=category,
        units=units,
        unit_price=price,
        model_id="qwen-image",
        operation="text_to_image",
    )


def race(count: int, attempt) -> list[bool]:
    """Run ``attempt(i)`` from ``count`` threads released at the same moment."""
    start = threading.Barrier(count)

    def run(i: int) -> bool:
        start.wait()
        try:
            attempt(i)
            return True
        except QuotaExceededError:
            return False

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_fifty_concurrent_requests_with_ten_remaining_admit_exactly_ten(ledger: Ledger) -> None:
    ledger.assign_plan("u-race", "free")  # 10 images per period
    admitted = race(50, lambda i: reserve(ledger, "u-race", f"op-{i}"))
    assert sum(admitted) == 10
    usage = ledger.usage("u-race")
    assert usage.counters["images"].reserved == 10 and usage.cost_reserved == PRICE * 10
    assert verify(ledger.engine) == []


def test_cost_cap_of_one_dollar_admits_exactly_three_thirty_cent_runs(ledger: Ledger) -> None:
    ledger.assign_plan("u-cap", "enterprise")  # unlimited counts: only money limits
    ledger.set_monthly_cap("u-cap", Decimal("1.00"))
    admitted = race(
        20,
        lambda i: reserve(ledger, "u-cap", f"cap-{i}", price=Decimal("0.30"), category="models_3d"),
    )
    assert sum(admitted) == 3
    assert ledger.usage("u-cap").cost_reserved == Decimal("0.90")
    with pytest.raises(QuotaExceededError) as refused:
        reserve(ledger, "u-cap", "cap-late", price=Decimal("0.30"), category="models_3d")
    assert refused.value.detail["usage_info"]["limit_type"] == "cost"
    assert refused.value.detail["usage_info"]["limit_usd"] == "1.00"


def test_settlement_retried_or_replayed_charges_once(ledger: Ledger) -> None:
    reserve(ledger, "u-settle", "op-s", units=3)
    outcomes = [False] * 8

    def settle(i: int) -> None:
        info = ledger.settle(
            operation_id="op-s", units_charged=2, delivered_predictions=["p1", "p2"]
        )
        outcomes[i] = not info.already_settled

    race(8, settle)
    assert sum(outcomes) == 1, "exactly one settlement moved money"
    charges = [e for e in ledger.events(operation_id="op-s") if e.kind == "charge"]
    assert len(charges) == 1 and charges[0].units == 2
    assert ledger.release(operation_id="op-s", reason="late release").already_settled
    usage = ledger.usage("u-settle")
    assert (
        usage.cost_used == PRICE * 2
        and usage.cost_reserved == 0
        and usage.provider_cost == PRICE * 2
    )
    assert verify(ledger.engine) == []


def test_summaries_equal_event_sums_after_a_randomised_run(ledger: Ledger) -> None:
    rng = random.Random(1234)
    users = [f"u-rand-{i}" for i in range(4)]
    for user in users:
        ledger.assign_plan(user, rng.choice(["free", "basic", "pro"]))
    ops = [(rng.choice(users), f"rand-{i}", rng.randint(1, 4)) for i in range(120)]

    def life(i: int) -> None:
        user, op, units = ops[i]
        try:
            reserve(ledger, user, op, units=units, category=rng.choice(["images", "edits"]))
        except QuotaExceededError:
            return
        outcome = i % 4
        if outcome == 0:
            ledger.settle(operation_id=op, units_charged=units, delivered_predictions=[f"{op}-p"])
        elif outcome == 1:
            ledger.settle(
                operation_id=op, units_charged=max(0, units - 1)
            )  # some variations failed
        elif outcome == 2:
            ledger.release(operation_id=op, reason="failed")
        else:
            ledger.release(operation_id=op, reason="cancelled")
            ledger.settle(
                operation_id=op, units_charged=units
            )  # a late settle after cancel: no effect

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(life, range(len(ops))))
    pipeline = ledger.reserve_pipeline(
        pipeline_id="pipe-r", user_id=users[0], lines={"edits": (1, Decimal("0.01"))}
    )
    assert pipeline
    ledger.draw(
        pipeline_id="pipe-r",
        reservation_id="res:pipe-r.s",
        operation_id="pipe-r.s",
        category="edits",
        units=1,
        unit_price=Decimal("0.01"),
        model_id="image-upscaler",
    )
    ledger.settle(operation_id="pipe-r.s", units_charged=1)
    ledger.release_pipeline(pipeline_id="pipe-r", reason="done")
    assert verify(ledger.engine) == []
    for user in users:
        usage = ledger.usage(user)
        assert usage.cost_reserved == 0 and all(c.reserved == 0 for c in usage.counters.values())
        totals = ledger.event_totals(user, usage.period)
        assert (
            usage.counters["images"].used + usage.counters["edits"].used
            == totals.get("charge", (0, 0))[0]
        )


def test_a_hold_whose_workflow_vanished_expires_and_the_books_still_agree(ledger: Ledger) -> None:
    reserve(ledger, "u-exp", "op-exp")
    assert ledger.stale_reservations() == []
    later = datetime.now(UTC) + timedelta(days=2)
    [stale] = ledger.stale_reservations(now=later)
    assert stale.operation_id == "op-exp"
    assert ledger.expire(operation_id="op-exp", reason="workflow gone") is True
    assert ledger.expire(operation_id="op-exp", reason="again") is False
    assert ledger.usage("u-exp").counters["images"].reserved == 0
    assert verify(ledger.engine) == []


def test_failed_runs_billed_by_the_provider_are_provider_cost_not_user_charges(
    ledger: Ledger,
) -> None:
    reserve(ledger, "u-pc", "op-pc")
    ledger.release(operation_id="op-pc", reason="prediction failed")
    assert ledger.record_provider_cost(
        operation_id="op-pc", prediction_id="pred-f", amount=PRICE, note="billed failure"
    )
    assert not ledger.record_provider_cost(
        operation_id="op-pc", prediction_id="pred-f", amount=PRICE, note="again"
    )
    usage = ledger.usage("u-pc")
    assert usage.cost_used == 0 and usage.provider_cost == PRICE
    assert verify(ledger.engine) == []


def test_verify_catches_a_counter_changed_behind_the_ledgers_back(ledger: Ledger) -> None:
    reserve(ledger, "u-tamper", "op-t")
    with ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE usage_counters SET used_units = used_units + 5 WHERE user_id = 'u-tamper'")
        )
    problems = verify(ledger.engine, user_id="u-tamper")
    assert len(problems) == 1 and "images used units" in str(problems[0])


def test_migrations_upgrade_an_empty_database_and_one_at_the_previous_revision(
    ledger_url: str,
) -> None:
    engine = create_ledger_engine(ledger_url)
    with pytest.raises(LedgerNotMigratedError, match="studio db upgrade"):
        ensure_schema(engine, auto_migrate=False)

    upgrade(engine, "0002")  # a database deployed by the previous release, with data in it
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO plans (id, name, price_monthly_micros, monthly_cost_cap_micros) VALUES ('free', 'Free', 0, 2000000)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO accounts (user_id, plan_id, period_anchor_day, credit_micros, created_at) "
                "VALUES ('old-user', 'free', 1, 0, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    assert "cost_cap_override_micros" not in {
        c["name"] for c in inspect(engine).get_columns("accounts")
    }
    ensure_schema(engine, auto_migrate=True)
    assert current_revision(engine) == head_revision()
    assert "cost_cap_override_micros" in {
        c["name"] for c in inspect(engine).get_columns("accounts")
    }
    assert {"balance_snapshots", "reconciliations"} <= set(inspect(engine).get_table_names())
    book = Ledger(engine)
    book.sync_plans()
    assert book.usage("old-user").plan == "free", "existing rows survive the upgrade"
    engine.dispose()

    fresh = (
        create_ledger_engine(ledger_url.replace("ledger.db", "fresh.db"))
        if ledger_url.startswith("sqlite")
        else None
    )
    if fresh is not None:
        upgrade(fresh)
        assert current_revision(fresh) == head_revision()
        fresh.dispose()


def test_billing_periods_roll_over_on_the_anchor_day(ledger: Ledger) -> None:
    assert billing_period(datetime(2026, 11, 30, tzinfo=UTC)) == "2026-11"
    assert billing_period(datetime(2026, 12, 1, tzinfo=UTC)) == "2026-12"
    assert billing_period(datetime(2026, 11, 14, tzinfo=UTC), anchor_day=15) == "2026-10-15"
    assert billing_period(datetime(2026, 11, 15, tzinfo=UTC), anchor_day=15) == "2026-11-15"
    assert billing_period(datetime(2027, 1, 3, tzinfo=UTC), anchor_day=15) == "2026-12-15"

    ledger.assign_plan("u-roll", "free")
    november = datetime(2026, 11, 20, tzinfo=UTC)
    for i in range(10):
        ledger.reserve(
            reservation_id=f"res:roll-{i}",
            operation_id=f"roll-{i}",
            user_id="u-roll",
            category="images",
            units=1,
            unit_price=PRICE,
            model_id="m",
            operation="text_to_image",
            now=november,
        )
        ledger.settle(operation_id=f"roll-{i}", units_charged=1, now=november)
    with pytest.raises(QuotaExceededError):
        ledger.reserve(
            reservation_id="res:roll-x",
            operation_id="roll-x",
            user_id="u-roll",
            category="images",
            units=1,
            unit_price=PRICE,
            model_id="m",
            operation="text_to_image",
            now=november,
        )
    december = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    ledger.reserve(
        reservation_id="res:roll-dec",
        operation_id="roll-dec",
        user_id="u-roll",
        category="images",
        units=1,
        unit_price=PRICE,
        model_id="m",
        operation="text_to_image",
        now=december,
    )
    assert ledger.usage("u-roll", now=december).counters["images"].reserved == 1
    assert ledger.usage("u-roll", now=november).counters["images"].used == 10


def test_zero_means_none_allowed_and_unlimited_is_explicit(ledger: Ledger) -> None:
    ledger.assign_plan("u-ent", "enterprise")
    assert ledger.usage("u-ent").counters["images"].limit is None
    reserve(
        ledger, "u-ent", "ent-1", units=500, price=Decimal("0.001")
    )  # no count limit, within $500
    ledger.assign_plan("u-free", "free")
    assert all(c.limit and c.limit > 0 for c in ledger.usage("u-free").counters.values())


def test_lookups_do_not_queue_behind_a_writer(tmp_path) -> None:
    """On SQLite every write transaction queues on one writer lock; a lookup (a run record's
    status, a user's events) must not: it reads its WAL snapshot while a writer holds the lock.
    The writer here holds its transaction open until the lookups are done (or 30 s pass)."""
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ensure_schema(engine, auto_migrate=True)
    book = Ledger(engine)
    book.sync_plans()
    book.assign_plan("reader", "pro")
    records = RunRecords(engine)
    records.claim(
        run_id="run-1", user_id="reader", kind="operation", operation="x", key=None, fingerprint="f"
    )
    writing, looked = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with engine.begin() as conn:  # BEGIN IMMEDIATE under the writer lock
            conn.execute(text("UPDATE accounts SET plan_id = plan_id WHERE user_id = 'reader'"))
            writing.set()
            looked.wait(30)

    writer = threading.Thread(target=hold_the_writer)
    writer.start()
    try:
        assert writing.wait(30)
        with ThreadPoolExecutor(1) as pool:
            found = pool.submit(records.find, "run-1").result(timeout=10)
            events = pool.submit(book.events, user_id="reader").result(timeout=10)
        assert found is not None and found.status == "running"
        assert events == []
        assert writer.is_alive(), "the writer still held the lock while the lookups ran"
    finally:
        looked.set()
        writer.join(30)
    engine.dispose()
