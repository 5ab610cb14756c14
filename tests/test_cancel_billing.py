"""Billing truth under cancellation, on PostgreSQL with real timing (issue 12).

Whatever the moment of a cancel, the ledger's provider cost equals what the provider (the
emulator) billed, to the cent, once the follow-ups have ended; a run that ends cancelled was
never charged; a run whose charge committed before the cancel completes with its result.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest_asyncio
from sqlalchemy import create_engine, text
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import OperationFailedError
from contracts.operation import OperationPhase, OperationResult
from emulator.server import EmulatorServer
from ledger.audit import verify
from studio.api import Studio
from studio.handles import OperationHandle
from tests.test_catalogue_operations import png_bytes
from tests.waiting import wait_until
from worker import build_worker
from workflows.abandoned import follow_up_id

BOUND = 90.0
"""Generous bound on any wait for a condition (never a timing assertion)."""


@dataclass
class Backend:
    studio: Studio
    resources: StudioResources
    client: Client
    url: str


@pytest_asyncio.fixture
async def backend(
    client: Client, settings: StudioSettings, postgres_url: str
) -> AsyncIterator[Backend]:
    """A worker of its own on a fresh PostgreSQL database."""
    isolated = settings.model_copy(
        update={"database_url": postgres_url, "task_queue": f"cancel-{uuid.uuid4().hex[:8]}"}
    )
    resources = StudioResources.from_settings(isolated)
    async with build_worker(client, resources):
        yield Backend(Studio(client, isolated), resources, client, postgres_url)
    await resources.aclose()


def emulator_billed(emulator: EmulatorServer, tag: str) -> Decimal:
    """What the emulated provider billed for this test's predictions."""
    return sum(
        (
            Decimal(str(p["billed"]))
            for p in emulator.predictions()
            if tag in str((p["input"] or {}).get("prompt", ""))
        ),
        Decimal("0"),
    )


def ledger_provider_cost(backend: Backend, user: str) -> Decimal:
    return sum(
        (
            Decimal(e.amount_micros) / 1_000_000
            for e in backend.resources.ledger.events(user_id=user)
            if e.kind == "provider_cost"
        ),
        Decimal("0"),
    )


async def outcome(handle: OperationHandle) -> OperationResult | OperationFailedError:
    try:
        return await asyncio.wait_for(handle.result(), BOUND)
    except OperationFailedError as exc:
        return exc


async def follow_ups_ended(client: Client, workflow_ids: list[str]) -> int:
    """Wait for every follow-up that was started; how many there were."""
    started = 0
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(follow_up_id(workflow_id))
        try:
            await asyncio.wait_for(handle.result(), BOUND)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        started += 1
    return started


async def wait_for_phase(handle: OperationHandle, *phases: OperationPhase) -> None:
    for _ in range(int(BOUND / 0.05)):
        if (await handle.progress()).phase in phases:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.workflow_id} never reached {phases}")


async def lock_waiters(url: str) -> None:
    """Wait until a transaction of this database waits for a row lock (the settlement)."""
    engine = create_engine(url)
    try:
        for _ in range(int(BOUND / 0.05)):
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            if waiting:
                return
            await asyncio.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("no transaction ever waited for the held lock")


@contextmanager
def hold_row_lock(url: str, operation_id: str, seconds: float) -> Iterator[threading.Event]:
    """Lock the operation's hold row from another connection for ``seconds`` (in a thread)."""
    engine = create_engine(url)
    locked = threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(
                text("SELECT id FROM reservations WHERE operation_id = :op FOR UPDATE"),
                {"op": operation_id},
            )
            locked.set()
            threading.Event().wait(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        locked.wait(BOUND)
        yield locked
    finally:
        thread.join(BOUND)
        engine.dispose()


async def assert_books(
    backend: Backend,
    emulator: EmulatorServer,
    tag: str,
    user: str,
    handles: list[OperationHandle],
    outcomes: list[OperationResult | OperationFailedError],
) -> None:
    """The checks every case ends with: cancelled means uncharged, charged means delivered,
    and the provider's bill equals the ledger's provider cost exactly."""
    ledger = backend.resources.ledger
    for handle, result in zip(handles, outcomes, strict=True):
        status = (await handle.handle.describe()).status
        charges = [e for e in ledger.events(operation_id=handle.workflow_id) if e.kind == "charge"]
        if isinstance(result, OperationFailedError):
            assert charges == [], f"{handle.workflow_id} ended {status} yet was charged"
            reservation = ledger.reservation(handle.workflow_id)
            assert reservation is None or reservation.state == "released"
        else:
            assert status == WorkflowExecutionStatus.COMPLETED
            assert len(charges) == 1 and charges[0].amount_micros / 1e6 == float(result.cost_usd)
            for variation in result.succeeded:
                for output in variation.outputs:
                    assert output.blob is not None
                    assert backend.resources.owners.owns(user, output.blob.sha256)
    await follow_ups_ended(backend.client, [h.workflow_id for h in handles])
    billed = emulator_billed(emulator, tag)
    assert billed == ledger_provider_cost(backend, user), "provider bill == ledger provider cost"
    assert verify(ledger.engine) == []
    usage = ledger.usage(user)
    assert usage.cost_reserved == 0


async def test_cancel_racing_a_held_charge_never_charges_a_cancelled_run(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """Three cancels against a slowed charge (a row lock held 2.5 s from another connection):
    before the charge (the run ends cancelled, uncharged); while the charge's transaction waits
    for the hold row (one transaction decides: either outcome, never both); and after the charge
    committed, while the settlement is still busy (too late: the run completes with its result).
    """
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "pro")
    handles: list[OperationHandle] = []
    for i, charge_waiting in enumerate((False, True)):
        handle = await backend.studio.start_generate_image(f"{tag} lock #{i}", user_id=user)
        handles.append(handle)
        await wait_for_phase(handle, OperationPhase.WAITING)
        with hold_row_lock(backend.url, handle.workflow_id, 2.5):
            if charge_waiting:  # the charge's transaction is queued behind the held lock
                await lock_waiters(backend.url)
            await handle.cancel()
    emulator.add_fault({"route": "submit", "kind": "expire_outputs", "match_prompt": tag})
    late = await backend.studio.start_generate_image(
        f"{tag} late", options={"num_variations": 2}, user_id=user
    )
    handles.append(late)
    expiring = await expiring_prediction(emulator, tag)
    with hold_event_key(backend.url, late.workflow_id, f"provider_cost:{expiring}", 2.5):
        await charge_committed(backend, late.workflow_id)
        await lock_waiters(backend.url)  # settlement is recording the undelivered one
        await late.cancel()
    outcomes = [await outcome(h) for h in handles]
    before, _, after = outcomes
    if not isinstance(after, OperationResult):
        async for ev in late.handle.fetch_history_events():
            print("EV", ev.event_id, ev.WhichOneof("attributes"), str(ev)[:600].replace("\n", " "))
        print("EVENTS", backend.resources.ledger.events(operation_id=late.workflow_id))
    assert isinstance(before, OperationFailedError) and before.failure_type == "Cancelled"
    assert isinstance(after, OperationResult), "charged before the cancel: completes"
    assert after.cancel_too_late and len(after.succeeded) == 1 and after.cost_usd > 0
    progress = await late.progress()
    assert "cancel arrived after the charge" in progress.detail
    assert (await late.handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    await assert_books(backend, emulator, tag, user, handles, outcomes)


async def expiring_prediction(emulator: EmulatorServer, tag: str) -> str:
    """The id of this test's prediction whose outputs expire (known once it is created)."""
    for _ in range(int(BOUND / 0.02)):
        for p in emulator.predictions():
            if tag in str(p["input"].get("prompt")) and "expire_outputs" in p["faults"]:
                return str(p["id"])
        await asyncio.sleep(0.02)
    raise AssertionError("the expiring prediction was never created")


async def charge_committed(backend: Backend, operation_id: str) -> None:
    for _ in range(int(BOUND / 0.05)):
        events = backend.resources.ledger.events(operation_id=operation_id)
        if any(e.kind == "charge" for e in events):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{operation_id} was never charged")


@contextmanager
def hold_event_key(url: str, operation_id: str, key: str, seconds: float) -> Iterator[None]:
    """Insert (uncommitted) an event with ``key`` from another connection for ``seconds``:
    whoever writes that key meanwhile waits for this transaction, then it rolls back."""
    engine = create_engine(url)
    held = threading.Event()

    def hold() -> None:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT user_id, period FROM reservations WHERE operation_id = :op"),
                {"op": operation_id},
            ).one()
            conn.execute(
                text(
                    "INSERT INTO usage_events (idempotency_key, kind, user_id, period, units, "
                    "amount_micros, created_at) VALUES (:key, 'provider_cost', :user, :period, "
                    "0, 0, now())"
                ),
                {"key": key, "user": row.user_id, "period": row.period},
            )
            held.set()
            threading.Event().wait(seconds)
            conn.rollback()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        held.wait(BOUND)
        yield
    finally:
        thread.join(BOUND)
        engine.dispose()


async def test_cancel_during_a_slow_submit_records_the_prediction_it_created(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """The paid POST takes 4 s and the cancel comes at 1.5 s: the run never learns the
    prediction's id, yet its follow-up finds it (durable intent, the provider's list) and
    records what the provider billed."""
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "pro")
    emulator.add_fault(
        {"route": "submit", "kind": "slow", "delay": 4.0, "match_prompt": tag, "times": -1}
    )
    handle = await backend.studio.start_generate_image(f"{tag} slow submit", user_id=user)
    await wait_until(  # the intent is written just before the POST, which then takes 4 s
        lambda: any(
            s.state == "intent"
            for s in backend.resources.submissions.submissions_for(handle.workflow_id)
        ),
        "the paid POST to be in flight",
        timeout=BOUND,
        interval=0.05,
    )
    await handle.cancel()
    result = await outcome(handle)
    assert isinstance(result, OperationFailedError) and result.failure_type == "Cancelled"
    assert await follow_ups_ended(backend.client, [handle.workflow_id]) == 1
    billed = emulator_billed(emulator, tag)
    assert billed > 0, "the slow POST created a prediction and the provider billed it"
    await assert_books(backend, emulator, tag, user, [handle], [result])


async def test_abandoned_prediction_that_fails_costs_nothing(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """Cancelled while its predictions run; they then fail at the provider, which bills nothing
    for failures: nothing is recorded as provider cost."""
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "pro")
    emulator.add_fault(
        {"route": "submit", "kind": "fail_prediction", "match_prompt": tag, "times": -1}
    )
    emulator.configure(processing_seconds=3.0)
    try:
        handle = await backend.studio.start_generate_image(
            f"{tag} failing", options={"num_variations": 2}, user_id=user
        )
        await wait_for_phase(handle, OperationPhase.WAITING)
        await handle.cancel()
        result = await outcome(handle)
        assert isinstance(result, OperationFailedError)
        assert await follow_ups_ended(backend.client, [handle.workflow_id]) == 1
    finally:
        emulator.configure(processing_seconds=0.2)
    failed = [p for p in emulator.predictions() if tag in str(p["input"].get("prompt"))]
    assert len(failed) == 2 and all(p["status"] == "failed" for p in failed)
    assert ledger_provider_cost(backend, user) == 0
    await assert_books(backend, emulator, tag, user, [handle], [result])


async def test_runs_cancelled_at_random_moments_leave_exact_books(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """Runs with slow submits, slow models, failing predictions and several variations, each
    cancelled at a random moment (or not at all): after the follow-ups, the bill is exact."""
    rng = random.Random(12)
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "enterprise")
    for i in range(0, 16, 4):
        emulator.add_fault(
            {"route": "submit", "kind": "fail_prediction", "match_prompt": f"{tag} #{i}:"}
        )
    for i in range(1, 16, 4):
        delay = rng.uniform(0.5, 3.5)
        emulator.add_fault(
            {"route": "submit", "kind": "slow", "delay": delay, "match_prompt": f"{tag} #{i}:"}
        )
    emulator.configure(processing_seconds=1.0)
    try:
        handles = [
            await backend.studio.start_generate_image(
                f"{tag} #{i}: a kite",
                options={"num_variations": 1 + i % 2},
                user_id=user,
            )
            for i in range(16)
        ]

        async def maybe_cancel(handle: OperationHandle) -> None:
            moment = rng.uniform(0.0, 4.0)
            if moment < 3.5:
                await asyncio.sleep(moment)
                await handle.cancel()

        await asyncio.gather(*(maybe_cancel(h) for h in handles))
        outcomes = [await outcome(h) for h in handles]
        await follow_ups_ended(backend.client, [h.workflow_id for h in handles])
    finally:
        emulator.configure(processing_seconds=0.2)
    cancelled = [
        o for o in outcomes if isinstance(o, OperationFailedError) and o.failure_type == "Cancelled"
    ]
    assert cancelled, "some runs were cancelled"
    assert emulator_billed(emulator, tag) > 0
    await assert_books(backend, emulator, tag, user, handles, outcomes)


def stability_spent(emulator: EmulatorServer) -> Decimal:
    """What the emulated Stability account was billed since its reset (1 credit = $0.01)."""
    account = emulator.stability
    return (account.start_credits - Decimal(str(account.stats()["credits"]))) / 100


def provider_costs(backend: Backend, user: str) -> list[tuple[str | None, Decimal]]:
    """The ledger's provider-cost events of ``user``: (provider, USD)."""
    return [
        (e.provider, Decimal(e.amount_micros) / 1_000_000)
        for e in backend.resources.ledger.events(user_id=user)
        if e.kind == "provider_cost"
    ]


async def test_a_cancelled_stability_job_is_asked_at_stability_and_its_cost_recorded(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """Cancelled while Stability's asynchronous creative upscale runs (3 s): the follow-up asks
    Stability (not WaveSpeed) about the generation id, and records its $0.60 under Stability."""
    emulator.stability.reset()
    emulator.stability.processing_seconds = 3.0
    user = f"u-{uuid.uuid4().hex[:8]}"
    backend.resources.ledger.assign_plan(user, "enterprise")
    try:
        handle = await backend.studio.start_generate_image_upscale(
            png_bytes(96, 80), user_id=user, mode="creative"
        )
        await wait_for_phase(handle, OperationPhase.WAITING)
        await handle.cancel()
        result = await outcome(handle)
        assert isinstance(result, OperationFailedError) and result.failure_type == "Cancelled"
        assert await follow_ups_ended(backend.client, [handle.workflow_id]) == 1
    finally:
        emulator.stability.processing_seconds = 0.2
    assert stability_spent(emulator) == Decimal("0.60")
    assert provider_costs(backend, user) == [("stability", Decimal("0.60"))]
    assert backend.resources.ledger.usage(user).cost_used == 0, "a cancelled run is not charged"
    assert verify(backend.resources.ledger.engine) == []


async def test_a_synchronous_call_answered_after_the_cancel_is_recorded_once(
    backend: Backend, emulator: EmulatorServer
) -> None:
    """The cancel comes while Stability Ultra's synchronous POST takes 1 s: the call still
    answers (the image is the answer, so it was billed); the follow-up records it once, under
    Stability, from the submission record the call bound, without asking anyone."""
    emulator.stability.reset()
    emulator.add_fault({"route": "stability", "kind": "slow", "delay": 1.0, "times": -1})
    user = f"u-{uuid.uuid4().hex[:8]}"
    backend.resources.ledger.assign_plan(user, "enterprise")
    handle = await backend.studio.start_generate_image(
        "a lighthouse", user_id=user, options={"model": "stability-ultra"}
    )
    await wait_until(
        lambda: any(
            s.state == "intent"
            for s in backend.resources.submissions.submissions_for(handle.workflow_id)
        ),
        "the paid POST to be in flight",
        timeout=BOUND,
        interval=0.05,
    )
    await handle.cancel()
    result = await outcome(handle)
    assert isinstance(result, OperationFailedError) and result.failure_type == "Cancelled"
    assert await follow_ups_ended(backend.client, [handle.workflow_id]) == 1
    [submission] = backend.resources.submissions.submissions_for(handle.workflow_id)
    assert submission.state == "accepted", "the call answered after the run ended"
    assert stability_spent(emulator) == Decimal("0.08")
    assert provider_costs(backend, user) == [("stability", Decimal("0.08"))]
    assert emulator.stability.stats()["result_gets"] == 0, "nothing to ask: the answer was it"
    assert verify(backend.resources.ledger.engine) == []
