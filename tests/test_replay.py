"""Upgrading workflow code safely: recorded histories must replay against the current code.

A change that would make running workflows non-deterministic (reordering activities, adding one
without ``workflow.patched``) fails here before it ships. ``STUDIO_RECORD_HISTORIES=1`` records
fresh histories from the test stack into ``tests/histories/`` (do it when a deliberate, patched
change lands): one per name in ``CURRENT``, covering signals (a webhook hint, a gate's update),
cancels (an operation, a pipeline and its child), timers, a resumed pipeline, the abandoned
predictions' follow-up and the maintenance workflow. Older recordings stay, renamed with the
date they were recorded (``2026-11-24-….json``): they prove the patched code still replays runs
started before the patches. A missing history fails, never skips.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS, workflow_runner

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORD = os.environ.get("STUDIO_RECORD_HISTORIES") == "1"
CURRENT = (
    "text-to-image",
    "variations",
    "upscale",
    "failed",
    "pipeline",
    "pipeline-gate",
    "webhook-completed",
    "cancelled-operation",
    "abandoned-follow-up",
    "cancelled-pipeline",
    "resumed-pipeline",
    "maintenance",
)
"""Recorded from the current workflows by ``tests/record_histories.py``."""


def names() -> list[str]:
    """Every current name (present or not: a missing one fails) and every older recording."""
    return sorted(set(CURRENT) | {p.stem for p in HISTORIES.glob("*.json")})


def history_of(name: str) -> WorkflowHistory:
    path = HISTORIES / f"{name}.json"
    if not path.exists():
        pytest.fail(
            f"{path} is missing: record it with STUDIO_RECORD_HISTORIES=1 pytest tests/test_replay.py",
            pytrace=False,
        )
    document = json.loads(path.read_text())
    # Child ids derive from the run's own id, so replay under the recorded one (older files: name).
    return WorkflowHistory.from_json(document.pop("workflowId", name), document)


def readable(history: WorkflowHistory) -> str:
    """The history's JSON with every payload's data decoded (JSON history keeps it base64)."""
    pieces: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                pieces.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    document = history.to_json_dict()
    walk(document)
    return "\n".join([json.dumps(document), *pieces])


@pytest.mark.skipif(not RECORD, reason="recording only when STUDIO_RECORD_HISTORIES=1")
async def test_record_histories(
    studio, client: Client, emulator, api_server, resources, user_id: str
) -> None:  # type: ignore[no-untyped-def]
    from tests.record_histories import record_all

    resources.ledger.assign_plan(user_id, "enterprise")  # a dozen runs: past the free plan
    runs = await record_all(studio, client, emulator, api_server, user_id)
    assert set(runs) == set(CURRENT)
    for name, workflow_id in runs.items():
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        document = {"workflowId": workflow_id, **history.to_json_dict()}
        (HISTORIES / f"{name}.json").write_text(json.dumps(document, indent=1))


@pytest.mark.parametrize("name", names())
async def test_recorded_history_replays_with_the_current_code(name: str) -> None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(True),
    )
    await replayer.replay_workflow(history_of(name))  # raises on any non-determinism


def test_the_current_histories_cover_what_a_deploy_can_break() -> None:
    """Each current recording holds what it is named for (and every workflow type has one), so a
    re-recording that lost its signal, cancel or timer fails here."""
    events = {name: readable(history_of(name)) for name in CURRENT}
    assert "workflowExecutionSignaledEventAttributes" in events["webhook-completed"]
    assert "timerStartedEventAttributes" in events["webhook-completed"]
    assert "workflowExecutionUpdateAcceptedEventAttributes" in events["pipeline-gate"]
    for cancelled in ("cancelled-operation", "cancelled-pipeline"):
        assert "workflowExecutionCancelRequestedEventAttributes" in events[cancelled], cancelled
        assert "workflowExecutionCanceledEventAttributes" in events[cancelled], cancelled
    assert "startChildWorkflowExecutionInitiatedEventAttributes" in events["cancelled-operation"]
    assert '"resume_of":"' in events["resumed-pipeline"].replace(" ", "")
    assert "maintenance-drift-limits" in events["maintenance"], "recorded after the patch"
    types = {
        history_of(name).to_json_dict()["events"][0]["workflowExecutionStartedEventAttributes"][
            "workflowType"
        ]["name"]
        for name in CURRENT
    }
    defined = {w.__temporal_workflow_definition.name for w in WORKFLOWS}  # type: ignore[attr-defined]
    assert defined - types <= {"CallerWebhook"}, f"no recorded history for {defined - types}"
