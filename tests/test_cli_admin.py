"""The operator's commands, each in its own process as a person types them: ``db upgrade`` on a
fresh database, ``admin plan|credit|cap``, ``ledger check`` (and its exit 1 on tampered books),
``ledger reconcile`` against a worker and the emulator (exit 1 once drift is flagged)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from emulator.config import EmulatorConfig
from emulator.server import EmulatorServer
from ledger.db import create_ledger_engine, current_revision, head_revision
from ledger.service import Ledger
from studio.api import Studio
from tests.conftest import API_KEY
from tests.test_gates import studio_cli
from worker import build_worker


def isolated(settings: StudioSettings, tmp_path: Path, **changes: object) -> StudioSettings:
    return settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'admin.db'}",
            "task_queue": f"admin-{uuid.uuid4().hex[:8]}",
            **changes,
        }
    )


async def test_db_upgrade_admin_and_ledger_check(settings: StudioSettings, tmp_path: Path) -> None:
    own = isolated(settings, tmp_path)
    code, upgraded = await studio_cli(own, "db", "upgrade")
    assert code == 0 and f"ledger at revision {head_revision()}" in upgraded, upgraded
    engine = create_ledger_engine(own.ledger_url)
    assert current_revision(engine) == head_revision()

    assert (await studio_cli(own, "admin", "plan", "u-ops", "pro"))[0] == 0
    assert (await studio_cli(own, "admin", "credit", "u-ops", "5"))[0] == 0
    code, refused = await studio_cli(own, "admin", "plan", "u-ops", "no-such-plan")
    assert code == 2 and "no-such-plan" in refused, refused
    code, bad_amount = await studio_cli(own, "admin", "credit", "u-ops", "lots")
    assert code == 2 and "not an amount: 'lots'" in bad_amount, bad_amount
    ledger = Ledger(engine)
    usage = ledger.usage("u-ops")
    assert usage.plan == "pro"
    plan_cap = usage.cost_cap
    assert (await studio_cli(own, "admin", "cap", "u-ops", "12"))[0] == 0
    assert ledger.usage("u-ops").cost_cap == Decimal("12") + 5, "custom cap plus the credit"
    assert (await studio_cli(own, "admin", "cap", "u-ops", "plan"))[0] == 0
    assert ledger.usage("u-ops").cost_cap == plan_cap

    code, agree = await studio_cli(own, "ledger", "check")
    assert code == 0 and "books agree" in agree, agree
    ledger.reserve(
        reservation_id="res:op-ops",
        operation_id="op-ops",
        user_id="u-ops",
        category="images",
        units=1,
        unit_price=Decimal("0.03"),
        model_id="qwen-image",
        operation="text_to_image",
    )
    with engine.begin() as conn:  # a counter no event explains
        conn.execute(text("UPDATE usage_counters SET used_units = used_units + 3"))
    code, disagree = await studio_cli(own, "ledger", "check", "--user", "u-ops")
    assert code == 1 and "images used units" in disagree, disagree
    engine.dispose()


async def test_ledger_reconcile_reports_and_exits_1_when_flagged(
    client: Client, settings: StudioSettings, tmp_path: Path
) -> None:
    with EmulatorServer(
        EmulatorConfig(processing_seconds=0.1, api_key=API_KEY, balance_usd=Decimal("50"))
    ) as provider:
        own = isolated(settings, tmp_path, wavespeed_base_url=provider.url)
        resources = StudioResources.from_settings(own)
        async with build_worker(client, resources):
            first = await studio_cli(own, "ledger", "reconcile")
            await Studio(client, own).generate_image("reconciled", user_id="u-ops")
            clean = await studio_cli(own, "ledger", "reconcile")
            provider.configure(balance_usd=Decimal(str(provider.balance)) - Decimal("0.02"))
            leak = await studio_cli(own, "ledger", "reconcile", "--ratio", "0.10")
        await resources.aclose()
    assert first[0] == 0 and "first snapshot" in first[1], first
    assert clean[0] == 0 and clean[1].startswith("wavespeed (balance $"), clean
    assert "\n  ok: provider balance spent" in clean[1] and "drift $0.00" in clean[1], clean
    assert "stability (balance $" in clean[1], "each provider with a balance has its own block"
    assert "huggingface (no balance endpoint)" in clean[1], clean
    assert leak[0] == 1 and "FLAGGED" in leak[1], leak
    assert "drift 100.0% of $0.02 spent exceeds 10.0%" in leak[1], leak
