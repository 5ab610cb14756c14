"""Billing end to end through workflows, on SQLite and PostgreSQL: hard limits under concurrent
load, books that add up after failures and cancellations, reconciliation, stale-hold expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio
from sqlalchemy import text

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import OperationFailedError, QuotaExceededError
from contracts.maintenance import MaintenanceRequest
from contracts.operation import OperationPhase
from emulator.config import EmulatorConfig
from emulator.server import EmulatorServer
from ledger.audit import verify
from providers.catalogue import Operation, load_catalogue
from studio.api import Studio
from tests.conftest import API_KEY
from tests.waiting import wait_for_phase
from worker import build_worker
from workflows.abandoned import follow_up_id
from workflows.maintenance import LedgerMaintenanceWorkflow

CATALOGUE = load_catalogue()


@dataclass
class Backend:
    studio: Studio
    resources: StudioResources
    settings: StudioSettings


@pytest_asyncio.fixture
async def backend(client, settings: StudioSettings, ledger_url: str) -> AsyncIterator[Backend]:
    """A worker of its own on a ledger of its own (SQLite file or a fresh PostgreSQL database)."""
    isolated = settings.model_copy(
        update={"database_url": ledger_url, "task_queue": f"billing-{uuid.uuid4().hex[:8]}"}
    )
    resources = StudioResources.from_settings(isolated)
    async with build_worker(client, resources):
        yield Backend(Studio(client, isolated), resources, isolated)
    await resources.aclose()


def prompts_seen(emulator: EmulatorServer, tag: str) -> int:
    return sum(
        1 for p in emulator.predictions() if tag in str((p["input"] or {}).get("prompt", ""))
    )


async def test_fifty_concurrent_operations_with_ten_remaining_run_exactly_ten(
    backend: Backend, emulator: EmulatorServer
) -> None:
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "free")  # 10 images per period
    outcomes = await asyncio.gather(
        *(backend.studio.generate_image(f"race {tag} #{i}", user_id=user) for i in range(50)),
        return_exceptions=True,
    )
    succeeded = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceededError)]
    assert len(succeeded) == 10 and len(refused) == 40, [
        type(o).__name__
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, QuotaExceededError)
    ]
    assert prompts_seen(emulator, tag) == 10, "refused requests never reached the provider"
    usage = backend.resources.ledger.usage(user)
    assert usage.counters["images"].used == 10 and usage.counters["images"].reserved == 0
    assert verify(backend.resources.ledger.engine) == []


async def test_cost_cap_of_one_dollar_runs_exactly_three_thirty_cent_operations(
    backend: Backend, emulator: EmulatorServer
) -> None:
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    model = CATALOGUE.for_operation(Operation.TEXT_TO_3D)[0]
    assert model.price_usd == Decimal("0.30")
    backend.resources.ledger.assign_plan(user, "enterprise")
    backend.resources.ledger.set_monthly_cap(user, Decimal("1.00"))
    outcomes = await asyncio.gather(
        *(backend.studio.generate_text_to_3d(f"chair {tag} #{i}", user_id=user) for i in range(12)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3
    assert sum(isinstance(o, QuotaExceededError) for o in outcomes) == 9
    assert prompts_seen(emulator, tag) == 3
    usage = backend.resources.ledger.usage(user)
    assert usage.cost_used == Decimal("0.90") and usage.cost_reserved == 0


async def test_books_agree_after_a_randomised_run_with_failures_and_cancellations(
    backend: Backend, emulator: EmulatorServer
) -> None:
    user, tag = f"u-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    backend.resources.ledger.assign_plan(user, "pro")
    slow = CATALOGUE.get("wan-2.2-t2i-realism")
    emulator.configure(model_latency={slow.path: 5.0})
    for i in range(0, 12, 3):
        emulator.add_fault(
            {
                "route": "submit",
                "kind": "fail_prediction",
                "code": 1403,
                "match_prompt": f"{tag} #{i}:",
                "times": 1,
            }
        )
    try:
        handles = []
        for i in range(12):
            options = {"num_variations": 1 + i % 3}
            handles.append(
                await backend.studio.start_generate_image(
                    f"mix {tag} #{i}: a kite", options=options, user_id=user
                )
            )
        slow_handles = [
            await backend.studio.start_generate_image(
                f"slow {tag} #{i}", options={"model": slow.id}, user_id=user
            )
            for i in range(4)
        ]
        for handle in slow_handles:  # the slow ones are submitted and waiting
            await wait_for_phase(handle, OperationPhase.WAITING)
        for handle in slow_handles:
            await handle.cancel()
        outcomes = await asyncio.gather(
            *(h.result() for h in handles + slow_handles), return_exceptions=True
        )
    finally:
        emulator.configure(model_latency={})
    cancelled = [
        o for o in outcomes if isinstance(o, OperationFailedError) and o.failure_type == "Cancelled"
    ]
    failed = [
        o for o in outcomes if isinstance(o, OperationFailedError) and o.failure_type != "Cancelled"
    ]
    delivered = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(cancelled) == 4 and failed and delivered
    ledger = backend.resources.ledger
    assert verify(ledger.engine) == [], "every counter equals the sum of its events"
    usage = ledger.usage(user)
    assert usage.cost_reserved == 0 and all(c.reserved == 0 for c in usage.counters.values())
    assert usage.cost_used == sum((r.cost_usd for r in delivered), Decimal("0"))
    assert usage.counters["images"].used == sum(len(r.succeeded) for r in delivered)
    # WaveSpeed cannot cancel: the four abandoned predictions finish and are billed; each
    # cancelled run's follow-up records that provider cost once they have ended.
    for handle in slow_handles:
        await backend.studio.client.get_workflow_handle(follow_up_id(handle.workflow_id)).result()
    abandoned = [
        e
        for e in ledger.events(user_id=user)
        if e.kind == "provider_cost" and "the run ended first" in (e.note or "")
    ]
    assert len(abandoned) == 4


async def test_reconciliation_reports_zero_drift_then_flags_an_injected_one(
    client, settings: StudioSettings, tmp_path
) -> None:
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
        studio = Studio(client, isolated)

        async def maintenance():  # type: ignore[no-untyped-def]
            return await client.execute_workflow(
                LedgerMaintenanceWorkflow.run,
                MaintenanceRequest(drift_threshold_usd=Decimal("0.05")),
                id=f"maintenance-{uuid.uuid4().hex[:8]}",
                task_queue=isolated.task_queue,
            )

        async with build_worker(client, resources):
            first = await maintenance()
            assert not first.reconcile.reconciled
            for i in range(3):
                await studio.generate_image(
                    f"recon {i}", options={"num_variations": 2}, user_id="u-recon"
                )
            clean = await maintenance()
            provider.configure(
                balance_usd=Decimal(str(provider.balance)) - Decimal("0.50")
            )  # billed behind our back
            drifted = await maintenance()
        await resources.aclose()
    price = CATALOGUE.get("qwen-image").price_usd
    assert (
        clean.reconcile.reconciled
        and clean.reconcile.drift_usd == 0
        and not clean.reconcile.flagged
    )
    assert clean.reconcile.balance_spent_usd == clean.reconcile.ledger_cost_usd == price * 6
    assert drifted.reconcile.flagged and drifted.reconcile.drift_usd == Decimal("0.50")


async def test_maintenance_expires_holds_of_vanished_workflows_only(
    backend: Backend, client, emulator: EmulatorServer
) -> None:
    ledger = backend.resources.ledger
    ledger.reserve(
        reservation_id="res:ghost",
        operation_id=f"ghost-{uuid.uuid4().hex[:6]}",
        user_id="u-ghost",
        category="images",
        units=2,
        unit_price=Decimal("0.03"),
        model_id="qwen-image",
        operation="text_to_image",
        workflow_id="no-such-workflow",
        ttl=timedelta(seconds=-1),
    )
    emulator.configure(processing_seconds=6.0)
    try:
        handle = await backend.studio.start_generate_image("still running", user_id="u-live")
        await wait_for_phase(handle, OperationPhase.WAITING)  # its hold exists
        with ledger.engine.begin() as conn:  # pretend its hold is old too
            conn.execute(
                text("UPDATE reservations SET expires_at = :past WHERE operation_id = :op"),
                {"past": datetime.now(UTC) - timedelta(hours=1), "op": handle.workflow_id},
            )
        report = await client.execute_workflow(
            LedgerMaintenanceWorkflow.run,
            MaintenanceRequest(),
            id=f"maint-{uuid.uuid4().hex[:6]}",
            task_queue=backend.settings.task_queue,
        )
        result = await handle.result()
    finally:
        emulator.configure(processing_seconds=0.2)
    assert report.expiry.examined == 2 and len(report.expiry.expired) == 1
    assert report.expiry.expired[0].startswith("ghost-")
    assert ledger.usage("u-ghost").counters["images"].reserved == 0
    assert result.cost_usd > 0 and ledger.reservation(handle.workflow_id).state == "settled"
    assert verify(ledger.engine) == []
