"""The Python client as a fal-client / replicate user reaches for it: ``run(model, input)``,
reattach by id, ``result(timeout=)``, ``events()`` ending in the result, reading stored bytes,
idempotency keys, and ``StudioSync`` running a pipeline from plain (non-async) code."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest

from config.settings import StudioSettings
from contracts.errors import IdempotencyKeyReusedError, InvalidRequestError
from contracts.operation import OperationPhase, OperationProgress
from contracts.pipeline import PipelineResult
from studio.api import Studio
from studio.events import ApprovalEvent, ProgressEvent, ResultEvent, RunEvent
from studio.sync import StudioSync
from tests.test_gates import wait_for_gate
from tests.test_pipelines import example

PHASE_ORDER = list(OperationPhase)


async def test_run_any_model_by_id_and_read_its_output(studio: Studio, user_id: str) -> None:
    result = await studio.run(
        "qwen-image", {"prompt": "a red kite", "size": "512*512"}, user_id=user_id, timeout=90
    )
    assert result.model_id == "qwen-image" and result.operation == "text_to_image"
    [blob] = result.blobs
    data = studio.read(blob)
    assert hashlib.sha256(data).hexdigest() == blob.sha256 and len(data) == blob.size
    assert "sig=" in studio.download_url(blob) or "X-Amz-Signature" in studio.download_url(blob)
    with pytest.raises(InvalidRequestError) as caught:
        await studio.run("qwen-image", {"prompt": "x", "size": "huge"}, user_id=user_id)
    assert caught.value.fields == ["inputs.size"]


async def test_events_yield_phases_in_order_and_end_with_the_result(
    studio: Studio, user_id: str
) -> None:
    handle = await studio.submit(
        "qwen-image", {"prompt": "a slow lighthouse"}, user_id=user_id, num_variations=2
    )
    events: list[RunEvent] = [event async for event in handle.events()]
    assert isinstance(events[-1], ResultEvent) and events[-1].final
    assert all(not e.final for e in events[:-1]) and len(events) >= 2
    phases = [
        e.progress.phase
        for e in events
        if isinstance(e, ProgressEvent) and isinstance(e.progress, OperationProgress)
    ]
    ranks = [PHASE_ORDER.index(p) for p in phases]
    assert ranks == sorted(ranks), phases
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].result == await handle.result()


async def test_reattach_by_id_with_the_same_idempotency_key_and_result_timeout(
    studio: Studio, user_id: str
) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    first = await studio.submit(
        "qwen-image", {"prompt": "a fox"}, user_id=user_id, idempotency_key=key
    )
    again = await studio.submit(
        "qwen-image", {"prompt": "a fox"}, user_id=user_id, idempotency_key=key
    )
    assert again.id == first.id
    reattached = studio.operation(first.id)
    assert (await reattached.result(timeout=90)).operation_id == first.id

    definition = example("review-then-3d.yaml")
    with pytest.raises(IdempotencyKeyReusedError):  # a key names one request, of one kind
        await studio.start_pipeline(definition, user_id=user_id, idempotency_key=key)
    pipeline_key = f"{key}-pipeline"
    gated = await studio.start_pipeline(definition, user_id=user_id, idempotency_key=pipeline_key)
    same = await studio.start_pipeline(definition, user_id=user_id, idempotency_key=pipeline_key)
    assert same.id == gated.id, "start_pipeline passes the idempotency key through"
    await wait_for_gate(gated)
    with pytest.raises(TimeoutError):
        await studio.pipeline(gated.id).result(timeout=0.5)
    await gated.cancel()


async def test_pipeline_events_announce_the_gate_and_resume_after_the_last_seen_id(
    studio: Studio, user_id: str
) -> None:
    handle = await studio.start_pipeline(example("review-then-3d.yaml"), user_id=user_id)
    seen: list[RunEvent] = []
    async for event in handle.events():
        seen.append(event)
        if isinstance(event, ApprovalEvent):
            break
    gate = seen[-1]
    assert isinstance(gate, ApprovalEvent) and gate.gate == "review"

    resumed = handle.events(last_event_id=gate.id)
    follower = asyncio.ensure_future(_collect(resumed))
    await asyncio.sleep(2)  # nothing new while the gate waits: the follower has sent nothing
    await handle.approve(user_id=user_id, chosen=[0])
    rest = await asyncio.wait_for(follower, timeout=90)
    assert isinstance(rest[-1], ResultEvent)
    assert rest[0].seq == gate.seq + 1, "sequence numbers go on from the last seen id"
    assert not any(isinstance(e, ApprovalEvent) for e in rest), "the gate is not announced twice"
    assert rest[0].digest != gate.digest, "the snapshot already seen is not sent again"


async def _collect(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [e async for e in events]


async def test_the_sync_facade_runs_a_pipeline(
    studio: Studio, settings: StudioSettings, user_id: str
) -> None:
    def plain_code() -> tuple[PipelineResult, list[str], bytes, str]:
        with StudioSync.connect(settings) as sync:
            quote = sync.quote_pipeline(example("generate-upscale-3d.yaml"), user_id=user_id)
            handle = sync.start_pipeline(example("generate-upscale-3d.yaml"), user_id=user_id)
            kinds = [event.kind for event in handle.events()]
            result = handle.result(timeout=90)
            first = result.steps[0].outputs[0].blob
            assert first is not None and quote.full_usd >= result.cost_usd
            return result, kinds, sync.read(first), first.sha256

    result, kinds, data, sha = await asyncio.to_thread(plain_code)
    assert [s.name for s in result.steps] == ["generate", "upscale", "model"]
    assert kinds[0] == "progress" and kinds[-1] == "result"
    assert hashlib.sha256(data).hexdigest() == sha
