"""Reconciliation notices a small steady leak, not only a large one: a window is flagged on
relative drift (3% of a $0.90 window is $0.03, far under the $0.50 absolute limit), the running
total across windows is flagged when no single window is, and the predictions behind a drift are
named. On SQLite and PostgreSQL (``ledger_url``), and end to end through the maintenance workflow
against the emulator's real prediction list."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.maintenance import MaintenanceRequest
from emulator.config import EmulatorConfig
from emulator.server import EmulatorServer
from ledger.reconcile import DriftLimits, ListedPrediction, Reconciler
from ledger.service import Ledger
from providers.catalogue import load_catalogue
from studio.api import Studio
from tests.conftest import API_KEY
from tests.waiting import wait_until
from worker import build_worker
from workflows.maintenance import LedgerMaintenanceWorkflow

PRICE = Decimal("0.03")
URL = "https://provider.test"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record_costs(ledger: Ledger, ids: list[str], at: datetime) -> None:
    """A delivered run of ``len(ids)`` images: charged, and each prediction's provider cost."""
    user, op = "u-recon", f"op-{uuid.uuid4().hex[:8]}"
    ledger.assign_plan(user, "enterprise")
    ledger.reserve(
        reservation_id=f"res:{op}",
        operation_id=op,
        user_id=user,
        category="images",
        units=len(ids),
        unit_price=PRICE,
        model_id="qwen-image",
        operation="text_to_image",
    )
    ledger.settle(operation_id=op, units_charged=len(ids), delivered_predictions=ids, now=at)


def listed(ids: list[str], at: datetime, status: str = "completed") -> list[ListedPrediction]:
    return [ListedPrediction(i, status, "wavespeed-ai/qwen-image", at) for i in ids]


def test_a_three_percent_drift_is_flagged_and_the_missing_prediction_named(
    ledger: Ledger,
) -> None:
    recon = Reconciler(ledger.engine)
    billed = [f"p-{i}" for i in range(30)]  # the provider billed 30 x $0.03 = $0.90 ...
    recon.snapshot(URL, Decimal("100.00"), at=T0)
    record_costs(ledger, billed[:29], T0 + timedelta(minutes=5))  # ... the ledger knows $0.87
    recon.snapshot(URL, Decimal("99.10"), at=T0 + timedelta(minutes=10))

    info = recon.reconcile_latest(
        URL, limits=DriftLimits(), listed=listed(billed, T0 + timedelta(minutes=1))
    )

    assert info is not None
    assert (info.balance_spent, info.ledger_cost, info.drift) == (
        Decimal("0.90"),
        Decimal("0.87"),
        Decimal("0.03"),
    )
    assert (
        info.flagged and info.relative is not None and round(info.relative, 3) == Decimal("0.033")
    )
    assert info.flags[0] == "drift 3.3% of $0.90 spent exceeds 1.0%", info.flags
    assert not any("exceeds $0.50" in f for f in info.flags), "the absolute limit alone misses it"
    assert [(u.prediction_id, u.side) for u in info.unmatched or ()] == [("p-29", "provider")]
    assert recon.history(1)[0].flags == info.flags, "flags and unmatched are persisted"
    assert recon.history(1)[0].unmatched == info.unmatched


def test_cumulative_drift_over_two_small_windows_is_flagged(ledger: Ledger) -> None:
    recon = Reconciler(ledger.engine)
    limits = DriftLimits(
        absolute=Decimal("0.50"), ratio=Decimal("0.05"), cumulative=Decimal("0.05")
    )
    balance, at = Decimal("100.00"), T0
    recon.snapshot(URL, balance, at=at)
    reports = []
    for window in range(3):
        record_costs(ledger, [f"w{window}-{i}" for i in range(33)], at + timedelta(minutes=1))
        balance -= Decimal("1.02")  # billed 34 images, 33 recorded: $0.03 (2.9%) leaks per window
        if window == 1:  # a snapshot no reconciliation used (a failed run): windows stay contiguous
            recon.snapshot(URL, balance + Decimal("0.10"), at=at + timedelta(minutes=2))
        at += timedelta(minutes=10)
        recon.snapshot(URL, balance, at=at)
        reports.append(recon.reconcile_latest(URL, limits=limits, reset_cumulative=window == 2))

    first, second, after_reset = reports
    assert first is not None and second is not None and after_reset is not None
    assert (first.drift, first.cumulative_drift, first.flagged) == (
        Decimal("0.03"),
        Decimal("0.03"),
        False,
    ), first.flags
    assert second.window_start == first.window_end, "each window starts where the last ended"
    assert (second.drift, second.cumulative_drift) == (Decimal("0.03"), Decimal("0.06"))
    assert second.flagged and second.flags == (
        "cumulative drift $0.06 (on $2.04 spent) exceeds $0.05",
    )
    assert not after_reset.flagged and after_reset.cumulative_drift == Decimal("0.03")
    assert [h.cumulative_drift for h in recon.history()] == [
        Decimal("0.03"),
        Decimal("0.06"),
        Decimal("0.03"),
    ], "the running total is persisted window by window"


def test_costs_the_provider_did_not_bill_are_named_and_recent_predictions_wait(
    ledger: Ledger,
) -> None:
    recon = Reconciler(ledger.engine)
    end = T0 + timedelta(minutes=10)
    recon.snapshot(URL, Decimal("100.00"), at=T0)
    record_costs(ledger, ["p-ok", "p-failed"], T0 + timedelta(minutes=5))
    recon.snapshot(URL, Decimal("99.94"), at=end)
    provider = [
        *listed(["p-ok"], T0 + timedelta(minutes=1)),
        *listed(["p-failed"], T0 + timedelta(minutes=1), status="failed"),
        *listed(["p-just-done"], end - timedelta(seconds=5)),
    ]
    window = recon.window(URL)
    assert window is not None

    free = recon.reconcile(window, DriftLimits(), listed=provider, grace=timedelta(minutes=1))
    assert [(u.prediction_id, u.side, u.status) for u in free.unmatched or ()] == [
        ("p-failed", "ledger", "failed")
    ], "a failed prediction is not billed, and p-just-done is within the grace"
    assert free.unmatched and free.unmatched[0].amount_usd == PRICE and free.flagged

    billing_failures = recon.reconcile(
        window, DriftLimits(), listed=provider, grace=timedelta(minutes=1), bills_failed=True
    )
    assert billing_failures.unmatched == () and not billing_failures.flagged


async def test_maintenance_names_a_prediction_billed_behind_the_ledgers_back(
    client: Client, settings: StudioSettings, tmp_path
) -> None:
    """End to end: the emulator's balance and prediction list against the ledger."""
    with EmulatorServer(
        EmulatorConfig(processing_seconds=0.1, api_key=API_KEY, balance_usd=Decimal("50"))
    ) as provider:
        isolated = settings.model_copy(
            update={
                "database_url": f"sqlite:///{tmp_path / 'recon.db'}",
                "task_queue": f"recon-{uuid.uuid4().hex[:8]}",
                "wavespeed_base_url": provider.url,
            }
        )
        resources = StudioResources.from_settings(isolated)
        request = MaintenanceRequest(match_grace_seconds=0)

        async def maintenance():  # type: ignore[no-untyped-def]
            return await client.execute_workflow(
                LedgerMaintenanceWorkflow.run,
                request,
                id=f"maintenance-{uuid.uuid4().hex[:8]}",
                task_queue=isolated.task_queue,
            )

        async with build_worker(client, resources):
            await maintenance()
            await Studio(client, isolated).generate_image("recon ok", user_id="u-recon")
            clean = await maintenance()
            orphan = await resources.provider.submit(
                load_catalogue().get("qwen-image").path, {"prompt": "billed behind our back"}
            )
            await wait_until(
                lambda: (provider.prediction(orphan.id) or {}).get("status") == "completed",
                "the orphan prediction to complete",
            )
            leaking = await maintenance()
        await resources.aclose()
    assert clean.reconcile.unmatched_checked and clean.reconcile.unmatched == []
    assert not clean.reconcile.flagged, clean.reconcile.summary
    leak = leaking.reconcile
    assert leak.flagged and leak.drift_usd == PRICE and leak.relative_drift == 1
    assert [(u.prediction_id, u.side) for u in leak.unmatched] == [(orphan.id, "provider")]
    assert leak.cumulative_drift_usd == PRICE
