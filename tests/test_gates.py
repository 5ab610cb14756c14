"""Pipeline gates: a person approves before the expensive step, on the real dev server.

Four candidates for $0.12, a person picks one, and only then $0.30 for the 3D model; a rejection
gives the held $0.30 back; a wrong decision is refused to the caller; the waiting run is visible
(current details, ``StudioStatus``) and survives a worker restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from activities.resources import StudioResources
from config.settings import StudioSettings
from contracts.errors import DecisionRefusedError, InvalidRequestError, OperationFailedError
from contracts.pipeline import AWAITING_APPROVAL, PipelineProgress, StepState
from contracts.search import STUDIO_STATUS
from emulator.server import EmulatorServer
from ledger.audit import verify
from providers.catalogue import load_catalogue
from studio.api import Studio
from studio.pipelines import PipelineHandle
from studio.stack import settings_env
from tests.test_pipelines import assert_books_closed, example, money
from tests.waiting import wait_until
from worker import build_worker

CATALOGUE = load_catalogue()
GENERATOR = CATALOGUE.get("qwen-image").path
MODELLER = CATALOGUE.get("hunyuan3d-v2.1").path


async def wait_for_gate(handle: PipelineHandle, timeout: float = 60.0) -> PipelineProgress:
    """The run's progress once a gate waits for a person."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            progress = await handle.progress()
            if progress.state == AWAITING_APPROVAL:
                return progress
        except Exception:  # noqa: BLE001 - the first query can race the worker
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the run never waited for approval")


async def listed(client: Client, query: str, expected: set[str], timeout: float = 15.0) -> set[str]:
    """Visibility is eventually consistent: the ids the query finds once they match (or last seen)."""
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        found = {w.id async for w in client.list_workflows(query)}
        if found == expected:
            break
        await asyncio.sleep(0.3)
    return found


async def current_details(handle: PipelineHandle) -> str:
    """What the Temporal UI shows as the run's current details (the SDK's metadata query)."""
    metadata = await handle.handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details


def child_input_blobs(history_json: dict[str, Any]) -> str:
    """The child run's start input, decoded (payload data is base64 in the JSON history)."""
    import base64

    started = history_json["events"][0]["workflowExecutionStartedEventAttributes"]
    return "".join(base64.b64decode(p["data"]).decode() for p in started["input"]["payloads"])


def predictions_of(emulator: EmulatorServer, path: str, tag: str | None = None) -> list[dict]:
    return [
        p
        for p in emulator.predictions()
        if p["model"] == path and (tag is None or tag in str((p["input"] or {}).get("prompt")))
    ]


async def test_quote_counts_the_steps_after_a_gate_as_conditional(
    studio: Studio, user_id: str
) -> None:
    quote = await studio.quote_pipeline(example("review-then-3d.yaml"), user_id=user_id)
    assert quote.now_usd == Decimal("0.12") and quote.to_reserve_usd == Decimal("0.42")
    assert quote.conditional_steps == ["model"]
    assert [s.after_approval for s in quote.steps] == [False, False, True]
    assert quote.describe() == "now $0.12, after approval up to $0.42"


async def test_approve_with_a_choice_runs_only_the_chosen_output_and_charges_exactly_that(
    studio: Studio,
    client: Client,
    emulator: EmulatorServer,
    resources: StudioResources,
    user_id: str,
) -> None:
    models_before = len(predictions_of(emulator, MODELLER))
    handle = await studio.start_pipeline(example("review-then-3d.yaml"), user_id=user_id)
    waiting = await wait_for_gate(handle)

    review = next(s for s in waiting.steps if s.name == "review")
    assert review.state == StepState.AWAITING_APPROVAL and review.approval is not None
    shown = review.approval.shown
    assert len(shown) == 4 and review.approval.approvers == [user_id]
    assert waiting.steps[2].state == StepState.PENDING
    assert len(predictions_of(emulator, MODELLER)) == models_before, "nothing paid past the gate"
    usage = resources.ledger.usage(user_id)
    assert money(resources, user_id, "charge") == Decimal("0.12")
    assert usage.cost_reserved == Decimal("0.30"), "the 3D step's share is held while waiting"

    details = await current_details(handle)
    assert "waiting for approval of generate: 4 images" in details, details
    query = f'StudioStatus="awaiting_approval" AND StudioPipeline="{handle.pipeline_id}"'
    assert await listed(client, query, {handle.pipeline_id}) == {handle.pipeline_id}

    outcome = await handle.approve(user_id=user_id, chosen=[2], comment="the third one")
    assert outcome.chosen == [2] and outcome.outputs == [shown[2]]
    result = await handle.result()

    model = result.step("model")
    assert model.state == StepState.SUCCEEDED and model.runs == 1
    assert result.step("review").outputs == [shown[2]]
    assert result.step("review").approval.decided_by == user_id
    [child_id] = model.child_workflow_ids
    child_history = (await client.get_workflow_handle(child_id).fetch_history()).to_json_dict()
    child_input = child_input_blobs(child_history)
    assert shown[2].blob.sha256 in child_input, "the chosen candidate went to the 3D step"
    assert not any(o.blob.sha256 in child_input for i, o in enumerate(shown) if i != 2)
    assert len(predictions_of(emulator, MODELLER)) == models_before + 1

    assert result.cost_usd == Decimal("0.42") == money(resources, user_id, "charge")
    assert_books_closed(resources, user_id)
    assert verify(resources.ledger.engine, user_id=user_id) == []
    described = await handle.handle.describe()
    assert described.typed_search_attributes.get(STUDIO_STATUS) == "succeeded"
    assert await listed(client, query, set()) == set(), "no longer listed as waiting"


async def test_reject_releases_the_hold_and_a_resume_asks_again_without_paying_twice(
    studio: Studio,
    client: Client,
    emulator: EmulatorServer,
    resources: StudioResources,
    user_id: str,
) -> None:
    definition = example("review-then-3d.yaml")
    tag = definition["steps"][0]["prompt"].rsplit("(", 1)[1].rstrip(")")
    models_before = len(predictions_of(emulator, MODELLER))
    first = await studio.start_pipeline(definition, user_id=user_id)
    await wait_for_gate(first)
    await first.reject(user_id=user_id, comment="none of these")
    with pytest.raises(OperationFailedError) as caught:
        await first.result()
    assert caught.value.failure_type == "Rejected"
    assert f"gate review rejected by {user_id}: 'none of these'" in str(caught.value)

    progress = await first.progress()
    assert progress.state == "rejected"
    assert [s.state for s in progress.steps] == [
        StepState.SUCCEEDED,
        StepState.REJECTED,
        StepState.SKIPPED,
    ]
    assert len(predictions_of(emulator, MODELLER)) == models_before
    assert money(resources, user_id, "charge") == Decimal("0.12")
    assert money(resources, user_id, "release") == Decimal("0.30"), "the held share went back"
    assert_books_closed(resources, user_id)
    assert verify(resources.ledger.engine, user_id=user_id) == []
    described = await first.handle.describe()
    assert described.typed_search_attributes.get(STUDIO_STATUS) == "rejected"

    generated = len(predictions_of(emulator, GENERATOR, tag))
    assert generated == 4, "four candidates (one prediction each)"

    quote = await studio.quote_pipeline(definition, user_id=user_id, resume_of=first.pipeline_id)
    assert (quote.now_usd, quote.to_reserve_usd) == (Decimal("0"), Decimal("0.30"))
    assert (
        quote.describe()
        == "resume costs now $0, after approval up to $0.30; a full rerun costs $0.42"
    )
    resumed = await studio.resume_pipeline(first.pipeline_id)
    again = await wait_for_gate(resumed)
    assert again.steps[0].state == StepState.REUSED, "the candidates were not paid for again"
    await resumed.approve(user_id=user_id, chosen=0)
    result = await resumed.result()
    assert result.cost_usd == Decimal("0.30")
    assert len(predictions_of(emulator, GENERATOR, tag)) == generated, "no candidate paid twice"
    assert money(resources, user_id, "charge") == Decimal("0.42")
    assert_books_closed(resources, user_id)
    assert verify(resources.ledger.engine, user_id=user_id) == []


async def test_wrong_decisions_are_refused_with_a_clear_error(
    studio: Studio, client: Client, emulator: EmulatorServer, user_id: str
) -> None:
    emulator.configure(model_latency={GENERATOR: 5.0})
    try:
        handle = await studio.start_pipeline(example("review-then-3d.yaml"), user_id=user_id)

        async def generating() -> bool:  # reserved, generating: the gate is not waiting yet
            try:
                return (await handle.progress()).steps[0].state == StepState.RUNNING
            except Exception:  # noqa: BLE001 - not yet queryable
                return False

        await wait_until(generating, "the generate step to run")
        with pytest.raises(
            DecisionRefusedError,
            match="not waiting for a decision \\(gate .review.: its inputs are not ready yet\\)",
        ):
            await handle.approve(user_id=user_id, chosen=0)
        await wait_for_gate(handle)
    finally:
        emulator.configure(model_latency={})

    with pytest.raises(DecisionRefusedError, match=r"user 'someone-else' may not decide .*only"):
        await handle.approve(user_id="someone-else", chosen=0)
    with pytest.raises(DecisionRefusedError, match="may not decide"):
        await handle.reject(user_id="someone-else")
    for bad in ([7], [0, 1], [], [-1]):
        with pytest.raises(InvalidRequestError) as caught:
            await handle.approve(user_id=user_id, chosen=bad)
        assert caught.value.fields == ["chosen"], caught.value
    with pytest.raises(InvalidRequestError, match="exactly 1 chosen"):
        await handle.approve(user_id=user_id)
    with pytest.raises(InvalidRequestError) as caught:
        await handle.approve(user_id=user_id, chosen=0, gate="model")
    assert caught.value.fields == ["gate"]
    with pytest.raises(InvalidRequestError) as caught:
        await handle.decide(user_id=user_id, decision="reject", chosen=[1])
    assert caught.value.fields == ["chosen"]

    history = json.dumps((await handle.handle.fetch_history()).to_json_dict())
    assert "UPDATE_ACCEPTED" not in history, "refused decisions never reach history"
    assert (await handle.progress()).state == AWAITING_APPROVAL

    await handle.approve(user_id=user_id, chosen=1)
    with pytest.raises(DecisionRefusedError, match=f"already approved by {user_id}"):
        await handle.reject(user_id=user_id)
    await handle.result()
    with pytest.raises(DecisionRefusedError, match="has ended \\(succeeded\\)"):
        await handle.approve(user_id=user_id, chosen=0)


async def test_a_waiting_run_survives_a_worker_restart(
    client: Client, settings: StudioSettings, resources: StudioResources, user_id: str
) -> None:
    queue = f"gate-restart-{uuid.uuid4().hex[:8]}"
    studio = Studio(client, settings.model_copy(update={"task_queue": queue}))
    async with build_worker(client, resources, task_queue=queue):
        handle = await studio.start_pipeline(example("review-then-3d.yaml"), user_id=user_id)
        shown = (await wait_for_gate(handle)).steps[1].approval.shown
    # the first worker is gone; a new one (empty cache) replays the history, then decides
    async with build_worker(client, resources, task_queue=queue):
        assert (await handle.progress()).state == AWAITING_APPROVAL
        await handle.approve(user_id=user_id, chosen=[3])
        result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.step("review").outputs == [shown[3]]
    assert result.cost_usd == Decimal("0.42")
    assert_books_closed(resources, user_id)


async def studio_cli(settings: StudioSettings, *args: str) -> tuple[int, str]:
    """Run the ``studio`` command in its own process, configured like the tests' stack."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "studio"),
        *args,
        env={**os.environ, **settings_env(settings), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_the_cli_shows_the_waiting_gate_and_decides(
    studio: Studio, settings: StudioSettings, user_id: str
) -> None:
    handle = await studio.start_pipeline(example("review-then-3d.yaml"), user_id=user_id)
    shown = (await wait_for_gate(handle)).steps[1].approval.shown
    code, status = await studio_cli(settings, "status", handle.pipeline_id)
    assert code == 0, status
    assert f"gate review: waiting for {user_id}" in status
    assert f"studio approve {handle.pipeline_id} --choose N" in status
    assert shown[3].blob.sha256[:12] in status, "the numbered outputs are listed"

    code, approved = await studio_cli(
        settings, "approve", handle.pipeline_id, "--choose", "3", "--comment", "the last one"
    )
    assert code == 0 and f"approved gate review of {handle.pipeline_id} as {user_id}" in approved
    result = await handle.result()
    assert result.step("review").outputs == [shown[3]]
    code, refused = await studio_cli(settings, "reject", handle.pipeline_id)
    assert code == 2 and "DecisionRefused" in refused and "has ended" in refused, refused


async def test_a_decision_racing_the_timeout_is_applied_or_refused_never_both(
    studio: Studio, resources: StudioResources, user_id: str
) -> None:
    definition = example("review-then-3d.yaml")
    definition["steps"][1]["approval"]["timeout"] = "4s"  # on_timeout: reject

    users = [f"{user_id}-{i}" for i in range(6)]  # one plan's image quota each

    async def race(user: str, offset: float) -> tuple[str, str]:
        handle = await studio.start_pipeline(definition, user_id=user)
        approval = (await wait_for_gate(handle)).steps[1].approval
        left = (approval.deadline - datetime.now(UTC)).total_seconds()  # one machine, one clock
        await asyncio.sleep(max(0.0, left + offset))
        try:
            await handle.approve(user_id=user, chosen=0)
            answer = "approved"
        except DecisionRefusedError as exc:
            assert re.search("timed out and was rejected|has ended \\(rejected\\)", str(exc)), exc
            answer = "refused"
        try:
            await handle.result()
            return answer, "succeeded"
        except OperationFailedError as exc:
            assert exc.failure_type == "Rejected" and "no decision within 4s" in str(exc)
            return answer, "rejected"

    offsets = (-3.0, -0.1, 0.0, 0.05, 0.1, 3.0)  # the outer two decide either way, even slowly
    outcomes = await asyncio.gather(*(race(u, o) for u, o in zip(users, offsets, strict=True)))
    assert set(outcomes) <= {("approved", "succeeded"), ("refused", "rejected")}, outcomes
    assert ("approved", "succeeded") in outcomes and ("refused", "rejected") in outcomes
    for user in users:
        assert_books_closed(resources, user)
        assert verify(resources.ledger.engine, user_id=user) == []
