"""Reconciliation per provider: each account's balance against its own provider costs only. A
Stability job never moves WaveSpeed's drift; a Stability balance drop matching its recorded costs
reconciles clean, one that does not is flagged; a provider without a balance endpoint is
reported with its recorded costs, drift not measurable. On SQLite and PostgreSQL (``ledger``),
and end to end through the maintenance workflow with both balances read over real HTTP from
the emulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.maintenance import MaintenanceRequest, ProviderReconcile
from emulator.config import EmulatorConfig
from emulator.server import EmulatorServer
from ledger.reconcile import DriftLimits, Reconciler
from ledger.service import Ledger
from ledger.submissions import SubmissionBook
from ledger.values import submission_path
from studio.api import Studio
from tests.conftest import API_KEY
from tests.test_catalogue_operations import png_bytes
from worker import build_worker
from workflows.maintenance import LedgerMaintenanceWorkflow

WAVESPEED, STABILITY = "https://wavespeed.test", "https://stability.test"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run(ledger: Ledger, provider: str, path: str, price: Decimal, n: int, at: datetime) -> None:
    """A delivered run of ``n`` images on ``provider``: submissions recorded, then settled."""
    user, op = "u-prov-recon", f"op-{uuid.uuid4().hex[:8]}"
    ledger.assign_plan(user, "enterprise")
    ledger.reserve(
        reservation_id=f"res:{op}",
        operation_id=op,
        user_id=user,
        category="images",
        units=n,
        unit_price=price,
        model_id="some-model",
        operation="text_to_image",
    )
    book, ids = SubmissionBook(ledger.engine), []
    for i in range(n):
        sub, prediction = f"{op}/{i}", f"{provider}-job-{op}-{i}"
        book.begin_submission(
            submission_id=sub,
            operation_id=op,
            user_id=user,
            model_path=submission_path(provider, path),
            body={"i": i},
        )
        book.accept_submission(sub, prediction)
        ids.append(prediction)
    ledger.settle(operation_id=op, units_charged=n, delivered_predictions=ids, now=at)


def test_each_balance_is_reconciled_against_its_own_providers_costs(ledger: Ledger) -> None:
    recon = Reconciler(ledger.engine)
    recon.snapshot(WAVESPEED, Decimal("50.00"), at=T0)
    recon.snapshot(STABILITY, Decimal("10.00"), at=T0)
    mid = T0 + timedelta(minutes=5)
    run(ledger, "wavespeed", "wavespeed-ai/qwen-image/text-to-image", Decimal("0.03"), 4, mid)
    run(ledger, "stability", "stable-image/upscale/creative", Decimal("0.60"), 2, mid)
    run(ledger, "huggingface", "black-forest-labs/FLUX.1-schnell", Decimal("0.01"), 3, mid)
    end = T0 + timedelta(minutes=10)
    recon.snapshot(WAVESPEED, Decimal("49.88"), at=end)  # exactly its four images
    recon.snapshot(STABILITY, Decimal("8.80"), at=end)  # exactly its two creative upscales

    wavespeed = recon.reconcile_latest(WAVESPEED, provider="wavespeed")
    stability = recon.reconcile_latest(STABILITY, provider="stability")

    assert wavespeed is not None and stability is not None
    assert (wavespeed.ledger_cost, wavespeed.drift, wavespeed.flagged) == (
        Decimal("0.12"),
        Decimal("0.00"),
        False,
    ), "Stability's $1.20 and Hugging Face's $0.03 are not counted against WaveSpeed"
    assert (stability.ledger_cost, stability.drift, stability.flagged) == (
        Decimal("1.20"),
        Decimal("0.00"),
        False,
    )
    assert recon.recorded_cost("huggingface", T0, end) == Decimal("0.03")
    assert [(h.provider, h.drift) for h in recon.history()] == [
        ("stability", Decimal("0.00")),
        ("wavespeed", Decimal("0.00")),
    ], "each reconciliation is stored under its provider"

    later = end + timedelta(minutes=10)
    run(ledger, "stability", "stable-image/generate/core", Decimal("0.03"), 1, later)
    recon.snapshot(STABILITY, Decimal("8.72"), at=later + timedelta(minutes=1))  # $0.08 gone
    leak = recon.reconcile_latest(STABILITY, provider="stability", limits=DriftLimits())
    assert leak is not None and leak.provider == "stability"
    assert (leak.balance_spent, leak.ledger_cost, leak.drift) == (
        Decimal("0.08"),
        Decimal("0.03"),
        Decimal("0.05"),
    )
    assert leak.flagged and leak.flags[0].startswith("drift 62.5% of $0.08 spent"), leak.flags
    recon.snapshot(WAVESPEED, Decimal("49.88"), at=later + timedelta(minutes=1))
    quiet = recon.reconcile_latest(WAVESPEED, provider="wavespeed")
    assert quiet is not None and quiet.ledger_cost == 0 and not quiet.flagged


def by_provider(entries: list[ProviderReconcile]) -> dict[str, ProviderReconcile]:
    return {e.provider: e for e in entries}


async def test_maintenance_reconciles_stability_credits_apart_from_wavespeed(
    client: Client, settings: StudioSettings, tmp_path
) -> None:
    """End to end: both balances read over HTTP from one emulator, Stability jobs (inline and
    asynchronous) and a Hugging Face image run, then credits spent behind the ledger's back."""
    with EmulatorServer(
        EmulatorConfig(processing_seconds=0.1, api_key=API_KEY, balance_usd=Decimal("50"))
    ) as provider:
        isolated = settings.model_copy(
            update={
                "database_url": f"sqlite:///{tmp_path / 'recon-providers.db'}",
                "task_queue": f"recon-prov-{uuid.uuid4().hex[:8]}",
                "wavespeed_base_url": provider.url,
                "stability_base_url": provider.stability_url,
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
            first = await maintenance()
            studio = Studio(client, isolated)
            await studio.generate_image("wavespeed", user_id="u-prov-e2e")
            ultra = await studio.generate_image(
                "stability", user_id="u-prov-e2e", options={"model": "stability-ultra"}
            )
            creative = await studio.generate_image_upscale(
                png_bytes(100, 80),
                user_id="u-prov-e2e",
                options={"model": "stability-upscale-creative", "extra": {"prompt": "crisper"}},
            )
            hf = await studio.generate_image("hf", user_id="u-prov-e2e", provider="huggingface")
            clean = await maintenance()
            provider.stability.credits -= Decimal(5)  # a job the ledger never saw
            leaking = await maintenance()
        await resources.aclose()

    assert [e.provider for e in first.reconcile.providers] == [
        "wavespeed",
        "stability",
        "gemini",
        "huggingface",
    ]
    assert not first.reconcile.reconciled and not first.reconcile.flagged
    assert (ultra.provider, creative.provider, hf.provider) == (
        "stability",
        "stability",
        "huggingface",
    )
    entries = by_provider(clean.reconcile.providers)
    wavespeed, stability = entries["wavespeed"], entries["stability"]
    assert wavespeed.reconciled and wavespeed.drift_usd == 0 and not wavespeed.flagged
    assert clean.reconcile.drift_usd == 0, "the top level still describes WaveSpeed"
    assert clean.reconcile.ledger_cost_usd == wavespeed.ledger_cost_usd == Decimal("0.03")
    assert stability.reconciled and stability.balance_spent_usd == Decimal("0.68")
    assert stability.ledger_cost_usd == ultra.cost_usd + creative.cost_usd == Decimal("0.68")
    assert stability.drift_usd == 0 and not stability.flagged, stability.summary
    assert not clean.reconcile.flagged, clean.reconcile.summary
    huggingface = entries["huggingface"]
    assert not huggingface.measurable and not huggingface.flagged
    assert huggingface.balance_usd is None and huggingface.ledger_cost_usd == hf.cost_usd > 0
    assert "drift not measurable" in huggingface.summary
    assert "stability: ok:" in clean.reconcile.summary, "the run's details name every provider"

    leak = by_provider(leaking.reconcile.providers)
    assert leak["stability"].flagged and leak["stability"].drift_usd == Decimal("0.05")
    assert not leak["wavespeed"].flagged and leaking.reconcile.drift_usd == 0
    assert leaking.reconcile.flagged, "a flagged provider flags the run"
