"""Paid submits can be held to the provider account's rate (WaveSpeed's tiers: Bronze = 2/min)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from activities.resources import StudioResources
from config.settings import StudioSettings
from emulator.server import EmulatorServer
from studio.api import Studio
from worker import build_submit_worker, build_worker


async def test_submits_follow_the_configured_rate_across_the_queue(
    client, settings: StudioSettings, emulator: EmulatorServer, user_id: str
) -> None:
    limited = settings.model_copy(
        update={"task_queue": f"rated-{uuid.uuid4().hex[:6]}", "submit_rate_per_second": 1.0}
    )
    resources = StudioResources.from_settings(limited)
    submit_worker = build_submit_worker(client, resources)
    assert submit_worker is not None and limited.submit_task_queue.endswith("-submit")
    tag = uuid.uuid4().hex[:6]
    async with build_worker(client, resources), submit_worker:
        studio = Studio(client, limited)
        results = await asyncio.gather(
            *(studio.generate_image(f"rated {tag} {i}", user_id=user_id) for i in range(4))
        )
    await resources.aclose()
    assert all(r.blobs for r in results)
    created = sorted(
        datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")[:26] + "+00:00")
        for p in emulator.predictions()
        if f"rated {tag} " in str((p["input"] or {}).get("prompt", ""))
    )
    assert len(created) == 4
    assert (created[-1] - created[0]).total_seconds() >= 2.0, "4 submits at 1/s take at least ~3 s"
