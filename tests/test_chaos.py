"""Chaos: a worker that SIGKILLs itself at every crash point, a Temporal server restarted mid-run,
and a provider that rate-limits, errors, resets, loses responses, dawdles and expires outputs.

After every round: every run ends as its faults demand (only the run whose outputs expire may lose
a variation; anything else fails the test with that run's history summary), one prediction per
variation at the emulator, one charge per operation equal to its delivered results, every hold
released, every stored blob intact. ``STUDIO_CHAOS_ROUNDS``
(default 1) runs more rounds with other seeds for a longer local soak.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.chaos import POINTS
from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import OperationFailedError
from emulator.server import EmulatorServer
from ledger.audit import verify
from providers.catalogue import load_catalogue
from studio.api import Studio
from studio.stack import (
    StackError,
    dev_server,
    free_port,
    settings_env,
    wait_for_port,
    worker_process,
)
from studio.temporal import connect
from tests.conftest import API_KEY

pytestmark = pytest.mark.chaos
ROUNDS = int(os.environ.get("STUDIO_CHAOS_ROUNDS", "1"))
OPERATIONS = int(os.environ.get("STUDIO_CHAOS_OPERATIONS", "10"))
PRICE = load_catalogue().get("qwen-image").price_usd


@pytest.mark.parametrize("round_no", range(ROUNDS))
async def test_kills_restarts_and_provider_faults_lose_and_double_pay_nothing(
    round_no: int, emulator: EmulatorServer, settings: StudioSettings, tmp_path: Path
) -> None:
    rng = random.Random(1000 + round_no)
    markers = tmp_path / "markers"
    markers.mkdir()
    for attempt in range(3):  # a free port can be taken by another process before the bind
        port = free_port()
        server = dev_server(
            port=port,
            ui_port=None,
            db_file=tmp_path / "temporal.db",
            log_path=tmp_path / f"temporal-{attempt}.log",
        )
        server.start()
        try:
            wait_for_port(
                "127.0.0.1", port, timeout=60, process=server.process, name="chaos dev server"
            )
            break
        except StackError:
            if attempt == 2:
                raise
    chaos = settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{port}",
            "task_queue": f"chaos-{uuid.uuid4().hex[:6]}",
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
            "activity_start_to_close_seconds": 5.0,
            "maintenance_every_minutes": 0,
        }
    )
    env = {
        **settings_env(chaos),
        "WAVESPEED_API_KEY": API_KEY,
        "STUDIO_CHAOS_CRASH_AT": "all",
        "STUDIO_CHAOS_DIR": str(markers),
        "STUDIO_CHAOS_MAX_PER_POINT": os.environ.get("STUDIO_CHAOS_MAX_PER_POINT", "2"),
        "STUDIO_WORKER_STICKY_TIMEOUT_SECONDS": "1",
        "STUDIO_MAINTENANCE_EVERY_MINUTES": "0",
    }
    user = f"chaos-{round_no}-{uuid.uuid4().hex[:6]}"
    resources = StudioResources.from_settings(chaos)
    resources.ledger.assign_plan(user, "enterprise")
    tag = uuid.uuid4().hex[:6]
    prompts = [f"chaos {tag} #{i}:" for i in range(OPERATIONS)]
    variations = {p: rng.choice([1, 1, 2]) for p in prompts}
    expired = _inject_faults(emulator, prompts, rng)
    # Polls come at 0.5 s, 8 s (qwen-image's typical time) and 12.8 s; the faults below fail
    # the first ones and the crashes delay others. 12 s jobs are still running at the 8 s poll
    # even when it comes late, so `while_waiting` is sure to fire (6 s jobs missed it in CI).
    emulator.configure(processing_seconds=12.0)

    workers, restarts = [], 0
    report: dict = {"round": round_no, "operations": OPERATIONS}
    try:
        client = await connect(chaos)
        studio = Studio(client, chaos)
        handles = [
            await studio.start_generate_image(
                p, options={"num_variations": variations[p]}, user_id=user
            )
            for p in prompts
        ]
        results_task = asyncio.ensure_future(_results(handles))
        deadline = time.monotonic() + 240
        server_restarted = False
        while not results_task.done() and time.monotonic() < deadline:
            if not workers or not workers[-1].running:  # crashed at a crash point: start another
                worker = worker_process(env=env, log_path=tmp_path / f"worker-{len(workers)}.log")
                worker.start()
                workers.append(worker)
            fired = len(list(markers.iterdir()))
            if not server_restarted and fired >= 4:  # mid-run: kill and restart the Temporal server
                server.kill()
                await asyncio.sleep(1.0)
                server.start()
                wait_for_port(
                    "127.0.0.1",
                    port,
                    timeout=60,
                    process=server.process,
                    name="restarted dev server",
                )
                server_restarted, restarts = True, restarts + 1
            await asyncio.wait({results_task}, timeout=0.3)
        assert results_task.done(), f"runs did not finish; worker logs in {tmp_path}"
        outcomes = results_task.result()
        unexpected = {
            prompt: await history_summary(client, handle.workflow_id)
            for prompt, handle in zip(prompts, handles, strict=True)
            if not _as_expected(outcomes[prompt], variations[prompt], prompt == expired)
        }
    finally:
        for worker in workers:
            worker.kill()
        server.stop()
        emulator.clear_faults()
        emulator.configure(processing_seconds=0.2)

    fired = Counter(m.name.split("-")[0] for m in markers.iterdir())
    report.update(
        worker_processes=len(workers),
        crashes=sum(fired.values()),
        crash_points=dict(fired),
        server_restarts=restarts,
        failed_operations=sum(isinstance(o, BaseException) for o in outcomes.values()),
    )
    (tmp_path / "chaos-report.json").write_text(json.dumps(report, indent=2))
    print(f"\nchaos round {round_no}: {json.dumps(report)}")

    assert not unexpected, "runs that ended otherwise than their faults demand:\n" + "\n".join(
        f"{prompt} ({outcomes[prompt]!r}):\n{summary}" for prompt, summary in unexpected.items()
    )
    assert set(fired) == set(POINTS), f"every crash point fired: {dict(fired)}"
    assert restarts == 1
    predictions = [
        p
        for p in emulator.predictions()
        if str((p["input"] or {}).get("prompt", "")).startswith(f"chaos {tag} ")
    ]
    ledger = resources.ledger
    for prompt in prompts:
        made = [p for p in predictions if p["input"]["prompt"] == prompt]
        assert len(made) == variations[prompt], (
            f"{prompt}: {len(made)} predictions for {variations[prompt]} variations"
        )
        outcome = outcomes[prompt]
        if isinstance(outcome, BaseException):
            continue  # only the expired single-variation run (checked above)
        charges = [
            e for e in ledger.events(operation_id=outcome.operation_id) if e.kind == "charge"
        ]
        assert len(charges) == 1 and charges[0].units == len(outcome.blobs), prompt
        assert Decimal(charges[0].amount_micros) / 1_000_000 == PRICE * len(outcome.blobs)
        assert all(resources.blobs.verify(b) for b in outcome.blobs), (
            "a stored result is missing or corrupt"
        )
    usage = ledger.usage(user)
    assert usage.cost_reserved == 0 and all(c.reserved == 0 for c in usage.counters.values()), (
        "a hold was left"
    )
    delivered = sum(len(o.blobs) for o in outcomes.values() if not isinstance(o, BaseException))
    assert usage.counters["images"].used == delivered
    assert verify(ledger.engine) == []
    await resources.aclose()


def _as_expected(outcome: object, variations: int, expired: bool) -> bool:
    """Every fault but one is transient and every crash is survivable: those runs deliver every
    variation. ``expire_outputs`` (one submit) loses exactly one variation for good: a run of one
    fails, a run of two delivers the other."""
    lost = 1 if expired else 0
    if isinstance(outcome, BaseException):
        return (
            expired
            and variations == 1
            and isinstance(outcome, OperationFailedError)
            and outcome.failure_type in ("OperationFailed", "OutputExpired")
        )
    return len(getattr(outcome, "blobs", [])) == variations - lost


async def history_summary(client: Client, workflow_id: str) -> str:
    """One line per event (type, and any failure message): why a run ended as it did."""
    lines = []
    try:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as exc:
        return f"  (history unavailable: {exc})"
    for event in history.events:
        kind = event.WhichOneof("attributes") or "?"
        attributes = getattr(event, kind)
        failure = getattr(attributes, "failure", None)
        note = f": {failure.message}" if failure is not None and failure.message else ""
        lines.append(f"  {event.event_id} {kind.removesuffix('_event_attributes')}{note}")
    return "\n".join(lines)


def _inject_faults(emulator: EmulatorServer, prompts: list[str], rng: random.Random) -> str:
    """Inject the faults; return the prompt whose outputs expire (the one fault that loses work)."""
    kinds = [
        {"route": "submit", "kind": "http_error", "status": 429, "retry_after": 0.5},
        {"route": "submit", "kind": "lost_response"},
        {"route": "submit", "kind": "http_error", "status": 503},
        {"route": "submit", "kind": "expire_outputs"},
    ]
    chosen = rng.sample(prompts, len(kinds))
    for prompt, fault in zip(chosen, kinds, strict=True):
        emulator.add_fault({**fault, "match_prompt": prompt})
    for fault in (
        {"route": "result", "kind": "http_error", "status": 502, "times": 6},
        {"route": "result", "kind": "reset", "times": 4},
        {"route": "result", "kind": "slow", "delay": 1.0, "times": 4},
        {"route": "output", "kind": "http_error", "status": 500, "times": 2},
    ):
        emulator.add_fault(fault)
    return chosen[-1]


async def _results(handles: list) -> dict:
    """Each run's result, riding out the Temporal server's restart."""
    outcomes: dict = {}
    for handle in handles:
        while True:
            try:
                outcomes[handle.request.inputs["prompt"]] = await handle.result()
                break
            except OperationFailedError as exc:
                outcomes[handle.request.inputs["prompt"]] = exc
                break
            except RPCError:
                await asyncio.sleep(0.5)
    return outcomes
