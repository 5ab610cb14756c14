"""The durable operation end to end: real dev server, emulator over HTTP, SQLite ledger."""

from __future__ import annotations

import io
import time
import uuid
from decimal import Decimal

import pytest
from PIL import Image

from activities.resources import StudioResources
from contracts.errors import InvalidRequestError, OperationFailedError, QuotaExceededError
from contracts.operation import OperationPhase
from emulator.server import EmulatorServer
from providers.catalogue import Operation, load_catalogue
from studio.api import Studio
from tests.waiting import wait_for_phase

CATALOGUE = load_catalogue()
T2I = CATALOGUE.for_operation(Operation.TEXT_TO_IMAGE)[0]


def prompt_for(test: str) -> str:
    return f"{test} {uuid.uuid4().hex[:8]}: a lighthouse at dawn"


def predictions_for(emulator: EmulatorServer, prompt: str) -> list[dict]:
    return [p for p in emulator.predictions() if (p["input"] or {}).get("prompt") == prompt]


def event_kinds(resources: StudioResources, operation_id: str) -> list[str]:
    return [e.kind for e in resources.ledger.events(operation_id=operation_id)]


async def test_happy_path_stores_a_valid_png_and_charges_once(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    prompt = prompt_for("happy")
    result = await studio.generate_image(
        prompt, options={"size": "512*384", "seed": 7}, user_id=user_id
    )

    assert len(result.blobs) == 1
    blob = result.blobs[0]
    assert blob.media_type == "image/png" and (blob.width, blob.height) == (512, 384)
    assert blob.location == f"blob:{blob.sha256}", "a content address, never a server path"
    with Image.open(io.BytesIO(resources.blobs.read_bytes(blob))) as img:
        img.verify()
    assert resources.blobs.verify(blob)
    assert result.cost_usd == T2I.price_usd
    assert len(predictions_for(emulator, prompt)) == 1
    assert result.prediction_ids == [predictions_for(emulator, prompt)[0]["id"]]

    kinds = event_kinds(resources, result.operation_id)
    assert kinds.count("charge") == 1 and kinds.count("reserve") == 1
    charge = next(
        e for e in resources.ledger.events(operation_id=result.operation_id) if e.kind == "charge"
    )
    assert Decimal(charge.amount_micros) / 1_000_000 == T2I.price_usd
    usage = resources.ledger.usage(user_id)
    assert usage.cost_used == T2I.price_usd and usage.cost_reserved == 0
    assert usage.counters["images"].used == 1 and usage.counters["images"].reserved == 0


async def test_failed_prediction_names_the_code_charges_nothing_and_releases(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    prompt = prompt_for("fails")
    emulator.add_fault(
        {"route": "submit", "kind": "fail_prediction", "code": 1403, "match_prompt": prompt}
    )

    with pytest.raises(OperationFailedError) as caught:
        await studio.generate_image(prompt, user_id=user_id)

    assert "1403" in str(caught.value) and "Task Execution Failed" in str(caught.value)
    assert caught.value.provider_code == 1403
    assert len(predictions_for(emulator, prompt)) == 1, "a 1xxx failure is not resubmitted"
    operation_id = caught.value.workflow_id
    assert operation_id is not None
    assert "charge" not in event_kinds(resources, operation_id)
    assert resources.ledger.reservation(operation_id).state == "released"
    usage = resources.ledger.usage(user_id)
    assert (
        usage.cost_used == 0 and usage.cost_reserved == 0 and usage.counters["images"].reserved == 0
    )


async def test_quota_exhausted_is_refused_before_submit(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "free")
    images_limit = resources.ledger.usage(user_id).counters["images"].limit
    assert images_limit == 10
    first = await studio.generate_image(
        prompt_for("fill"), options={"num_variations": 10}, user_id=user_id
    )
    assert len(first.succeeded) == 10

    prompt = prompt_for("refused")
    before = emulator.stats()["submit_requests"]
    with pytest.raises(QuotaExceededError) as caught:
        await studio.generate_image(prompt, user_id=user_id)

    detail = caught.value.detail
    assert set(detail) == {"error", "message", "provider", "usage_info"}
    assert "Would use 11 of 10 images" in detail["message"]
    assert detail["usage_info"]["limit"] == 10 and detail["usage_info"]["category"] == "images"
    assert emulator.stats()["submit_requests"] == before
    assert predictions_for(emulator, prompt) == []
    assert resources.ledger.usage(user_id).counters["images"].used == 10


async def test_rate_limited_submit_honours_retry_after_then_succeeds(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    prompt = prompt_for("429")
    emulator.add_fault(
        {
            "route": "submit",
            "kind": "http_error",
            "status": 429,
            "retry_after": 2,
            "match_prompt": prompt,
        }
    )
    started = time.monotonic()
    result = await studio.generate_image(prompt, user_id=user_id)
    assert time.monotonic() - started >= 2.0, "Retry-After was not honoured"
    assert len(result.blobs) == 1
    assert len(predictions_for(emulator, prompt)) == 1


async def test_transient_5xx_while_waiting_then_success(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    prompt = prompt_for("503")
    emulator.add_fault({"route": "result", "kind": "http_error", "status": 503, "times": 2})
    result = await studio.generate_image(prompt, user_id=user_id)
    assert len(result.blobs) == 1
    assert len(predictions_for(emulator, prompt)) == 1


async def test_lost_submit_response_creates_exactly_one_prediction(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    prompt = prompt_for("lost")
    emulator.add_fault({"route": "submit", "kind": "lost_response", "match_prompt": prompt})
    result = await studio.generate_image(prompt, user_id=user_id)

    assert len(result.blobs) == 1
    created = predictions_for(emulator, prompt)
    assert len(created) == 1
    assert result.prediction_ids == [created[0]["id"]]
    [submission] = resources.submissions.submissions_for(result.operation_id)
    assert submission.prediction_id == created[0]["id"] and submission.attempts >= 2
    assert event_kinds(resources, result.operation_id).count("charge") == 1


@pytest.mark.parametrize(
    ("prompt", "options", "field"),
    [
        ("a cat", {"model": "no-such-model"}, "model"),
        ("a cat", {"size": "99999*10"}, "inputs.size"),
        ("", None, "prompt"),
        ("a cat", {"num_variations": 11}, "options.num_variations"),
        ("a cat", {"extra": {"bogus_field": 1}}, "inputs.bogus_field"),
    ],
)
async def test_bad_input_names_the_field_and_submits_nothing(
    studio: Studio,
    emulator: EmulatorServer,
    user_id: str,
    prompt: str,
    options: dict | None,
    field: str,
) -> None:
    before = emulator.stats()["submit_requests"]
    with pytest.raises(InvalidRequestError) as caught:
        await studio.generate_image(prompt, options=options, user_id=user_id)
    assert field in caught.value.fields, caught.value
    assert emulator.stats()["submit_requests"] == before


async def test_out_of_range_size_error_lists_the_allowed_range(
    studio: Studio, user_id: str
) -> None:
    field = T2I.field("size")
    assert field is not None
    with pytest.raises(InvalidRequestError) as caught:
        await studio.generate_image("a cat", options={"size": "99999*10"}, user_id=user_id)
    error = next(e for e in caught.value.errors if e.field == "inputs.size")
    assert error.allowed is not None and str(int(field.max or 0)) in error.allowed


async def test_progress_query_reports_the_phase(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    emulator.configure(processing_seconds=2.0)
    try:
        handle = await studio.start_generate_image(prompt_for("progress"), user_id=user_id)
        await wait_for_phase(handle, OperationPhase.WAITING)
        result = await handle.result()
        final = await handle.progress()
    finally:
        emulator.configure(processing_seconds=0.2)
    assert final.phase == OperationPhase.SUCCEEDED
    assert final.prediction_ids == result.prediction_ids
    assert final.cost_usd == result.cost_usd
