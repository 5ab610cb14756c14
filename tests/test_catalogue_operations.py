"""Every catalogued model and every operation, end to end through the workflow and the emulator."""

from __future__ import annotations

import io
import json
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from activities.resources import StudioResources
from contracts.errors import InvalidRequestError
from contracts.operation import OutputKind
from domain.options import GenerateOptions
from emulator.server import EmulatorServer
from providers.catalogue import ImageRole, ModelSpec, Operation, load_catalogue
from studio.api import Studio

CATALOGUE = load_catalogue()


def png_bytes(
    width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 80, 40)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def minimal_call(spec: ModelSpec) -> dict[str, Any]:
    """The smallest valid request for ``spec``, built from its schema alone."""
    images: dict[ImageRole, Any] = {}
    extra: dict[str, Any] = {}
    prompt = None
    for field in spec.inputs:
        if not field.required:
            continue
        if field.type in ("image", "images"):
            images[field.role] = png_bytes(colour=(len(images) * 60, 90, 160))  # type: ignore[index]
        elif field.name in ("prompt", "text"):
            prompt = f"catalogue check for {spec.id} {uuid.uuid4().hex[:6]}"
        elif field.type == "enum":
            extra[field.name] = field.values[0]  # type: ignore[index]
        elif field.type == "string":
            extra[field.name] = "x"
        else:  # pragma: no cover - the catalogue has no other required field types today
            raise AssertionError(f"{spec.id}: cannot fill required {field.type} {field.name}")
    for group in spec.requires_one_of:  # e.g. outpaint: one of left/right/up/down non-zero
        first = spec.field(group[0])
        assert first is not None and first.type in ("integer", "string"), spec.id
        extra[first.name] = 64 if first.type == "integer" else "x"
    return {"prompt": prompt, "images": images, "options": {"model": spec.id, "extra": extra}}


def calls_to(emulator: EmulatorServer, spec: ModelSpec) -> int:
    """Paid calls the model's provider ran (each provider's emulator counts its own)."""
    if spec.provider == "stability":
        return int(emulator.stability.stats()["billed"].get(spec.path, 0))
    if spec.provider in ("huggingface", "gemini"):
        account = emulator.huggingface if spec.provider == "huggingface" else emulator.gemini
        return int(account.stats()["billed"].get(spec.path, 0))
    return int(emulator.stats()["by_model"].get(spec.path, 0))


@pytest.mark.parametrize("spec", CATALOGUE.models, ids=lambda m: m.id)
async def test_every_catalogued_model_runs_end_to_end(
    spec: ModelSpec,
    studio: Studio,
    emulator: EmulatorServer,
    resources: StudioResources,
    user_id: str,
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    call = minimal_call(spec)
    before = calls_to(emulator, spec)
    request = await studio.build_request(
        spec.operations[0],
        user_id=user_id,
        options=call["options"],
        prompt=call["prompt"],
        images=call["images"],
    )
    result = await studio.run_operation(request)

    assert calls_to(emulator, spec) == before + 1
    assert result.cost_usd == spec.price_usd
    [output] = result.outputs
    assert output.kind == spec.output.kind
    if spec.output.kind is OutputKind.TEXT:
        assert output.text and output.text.strip()
    else:
        assert output.blob is not None and resources.blobs.verify(output.blob)
        if spec.output.kind is OutputKind.IMAGE:
            assert (
                output.blob.media_type.startswith("image/")
                and output.blob.width
                and output.blob.height
            )
        else:
            assert output.blob.format in spec.output.formats
            assert (
                resources.blobs.read_bytes(output.blob)[:4] == b"glTF"
                or output.blob.format != "glb"
            )


def _bad_value(spec: ModelSpec) -> tuple[str, Any]:
    """A field of ``spec`` and a value its schema refuses."""
    for field in spec.inputs:
        if field.type == "enum":
            return field.name, "not-a-value"
    for field in spec.inputs:
        if field.type in ("integer", "number") and field.max is not None:
            return field.name, int(field.max) + 1
    return "bogus_field", 1


@pytest.mark.parametrize("operation", list(Operation), ids=lambda o: o.value)
async def test_invalid_requests_name_the_field_and_submit_nothing(
    operation: Operation, studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    spec = CATALOGUE.for_operation(operation)[0]
    call = minimal_call(spec)
    before = emulator.stats()["submit_requests"]
    stability_before = emulator.stability.stats()["posts"]

    name, value = _bad_value(spec)
    with pytest.raises(InvalidRequestError) as bad_value:
        await studio.build_request(
            operation,
            user_id=user_id,
            options={"model": spec.id, "extra": {**call["options"]["extra"], name: value}},
            prompt=call["prompt"],
            images=call["images"],
        )
    assert f"inputs.{name}" in bad_value.value.fields
    assert (
        any(e.allowed for e in bad_value.value.errors if e.field == f"inputs.{name}")
        or name == "bogus_field"
    )

    required = next((f for f in spec.inputs if f.required), None)
    assert required is not None
    images = {r: v for r, v in call["images"].items() if r != required.role}
    prompt = None if required.name in ("prompt", "text") else call["prompt"]
    extra = {k: v for k, v in call["options"]["extra"].items() if k != required.name}
    with pytest.raises(InvalidRequestError) as missing:
        await studio.build_request(
            operation,
            user_id=user_id,
            options={"model": spec.id, "extra": extra},
            prompt=prompt,
            images=images,
        )
    assert f"inputs.{required.name}" in missing.value.fields

    assert emulator.stats()["submit_requests"] == before
    assert emulator.stability.stats()["posts"] == stability_before


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/cat.png",
        "https://10.0.0.1/cat.png",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/x.png",
    ],
)
async def test_url_inputs_to_private_addresses_are_refused(
    url: str, studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    before = emulator.stats()["submit_requests"]
    with pytest.raises(InvalidRequestError) as caught:
        await studio.generate_image_upscale(url, user_id=user_id)
    assert caught.value.fields == ["images.base"]
    assert "refused" in str(caught.value)
    assert emulator.stats()["submit_requests"] == before


class _TextServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = b"this is not an image"
        self.send_response(200)
        self.send_header("Content-Type", "image/png")  # lies about its type
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_url_input_that_is_not_an_image_is_refused(
    client, settings, emulator: EmulatorServer, user_id: str
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TextServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Only this test may reach a local server; the guard itself is covered above.
    lenient = Studio(client, settings.model_copy(update={"allow_private_urls": True}))
    before = emulator.stats()["submit_requests"]
    try:
        with pytest.raises(InvalidRequestError) as caught:
            await lenient.generate_image_upscale(
                f"http://127.0.0.1:{server.server_port}/fake.png", user_id=user_id
            )
    finally:
        server.shutdown()
    assert caught.value.fields == ["images.base"]
    assert "not an image" in str(caught.value)
    assert emulator.stats()["submit_requests"] == before


async def test_non_image_bytes_are_refused(studio: Studio, user_id: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await studio.generate_image_upscale(b"%PDF-1.4 not an image", user_id=user_id)
    assert caught.value.fields == ["images.base"]


async def test_four_variations_one_failing_gives_three_results_charged_three_times(
    studio: Studio, emulator: EmulatorServer, resources: StudioResources, user_id: str
) -> None:
    prompt = f"variations {uuid.uuid4().hex[:8]}: a paper boat"
    emulator.add_fault(
        {
            "route": "submit",
            "kind": "fail_prediction",
            "code": 1403,
            "match_prompt": prompt,
            "times": 1,
        }
    )
    result = await studio.generate_image(
        prompt, options={"num_variations": 4, "seed": 11}, user_id=user_id
    )

    assert len(result.succeeded) == 3 and len(result.blobs) == 3
    [failed] = result.failed
    assert failed.provider_code == 1403 and "1403" in (failed.error or "")
    seeds = sorted(
        p["input"]["seed"]
        for p in emulator.predictions()
        if (p["input"] or {}).get("prompt") == prompt
    )
    assert seeds == [11, 12, 13, 14]
    price = CATALOGUE.for_operation(Operation.TEXT_TO_IMAGE)[0].price_usd
    assert result.cost_usd == price * 3
    [charge] = [
        e for e in resources.ledger.events(operation_id=result.operation_id) if e.kind == "charge"
    ]
    assert charge.units == 3 and Decimal(charge.amount_micros) / 1_000_000 == price * 3
    usage = resources.ledger.usage(user_id)
    assert usage.counters["images"].used == 3 and usage.counters["images"].reserved == 0


async def test_estimate_equals_what_settlement_charges(
    studio: Studio, resources: StudioResources, user_id: str
) -> None:
    request = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        options={"template_id": "youtube_thumbnail", "num_variations": 3},
        prompt="a mountain lake",
        options_type=GenerateOptions,
    )
    estimate = studio.estimate(request)
    result = await studio.run_operation(request)
    assert estimate.total_usd == result.cost_usd
    [charge] = [
        e for e in resources.ledger.events(operation_id=result.operation_id) if e.kind == "charge"
    ]
    assert Decimal(charge.amount_micros) / 1_000_000 == estimate.total_usd
    assert studio.estimate([request, request]).total_usd == 2 * estimate.total_usd


async def test_named_functions_route_images_to_the_right_fields(
    studio: Studio, resources: StudioResources, emulator: EmulatorServer, user_id: str
) -> None:
    resources.ledger.assign_plan(user_id, "enterprise")
    photo, face = png_bytes(colour=(10, 200, 10)), png_bytes(colour=(200, 10, 10))

    uploads_before = emulator.stats()["uploads"]
    swap = await studio.generate_face_swap(
        photo, face, user_id=user_id, options={"model": "infinite-you"}
    )
    submitted = emulator.prediction(swap.prediction_ids[0])["input"]
    assert set(submitted) >= {"target_image", "source_image"}
    # Inputs reach WaveSpeed through its media upload endpoint, not as inline base64.
    assert emulator.stats()["uploads"] >= uploads_before + 2
    assert all(
        submitted[k].startswith(emulator.url) and "base64" not in submitted[k]
        for k in ("target_image", "source_image")
    )

    akool = await studio.generate_face_swap(
        photo, face, user_id=user_id, options={"model": "akool-face-swap"}
    )
    assert isinstance(emulator.prediction(akool.prediction_ids[0])["input"]["source_image"], list)

    translated = await studio.generate_image_translate(photo, "english", user_id=user_id)
    assert emulator.prediction(translated.prediction_ids[0])["input"]["target_lang"] == "en"

    caption = await studio.caption_image(photo, user_id=user_id)
    assert caption.texts and caption.texts[0].strip()

    better = await studio.optimize_prompt("cat on a sofa", user_id=user_id)
    assert better.texts and better.texts[0] != "cat on a sofa"

    model = await studio.generate_image_to_3d(photo, user_id=user_id)
    assert model.blobs[0].format == "glb"

    multiview = await studio.generate_image_to_3d(
        photo,
        user_id=user_id,
        options={"model": "hunyuan3d-v2-multiview"},
        views={"back": face, "left": face},
    )
    assert set(emulator.prediction(multiview.prediction_ids[0])["input"]) >= {
        "front_image_url",
        "back_image_url",
        "left_image_url",
    }

    upscaled = await studio.generate_image_upscale(photo, user_id=user_id, target_resolution="2k")
    assert max(upscaled.blobs[0].width, upscaled.blobs[0].height) == 2048


async def test_create_studio_presets_fit_the_model(studio: Studio, user_id: str) -> None:
    wide = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        options={"quality": "standard", "aspect_ratio": "21:9"},
        prompt="a skyline",
        options_type=GenerateOptions,
    )
    assert wide.model_id == "qwen-image" and wide.inputs["size"] == "1536*648"

    thumb = await studio.build_request(
        Operation.TEXT_TO_IMAGE,
        user_id=user_id,
        options={"template_id": "youtube_thumbnail"},
        prompt="a skyline",
        options_type=GenerateOptions,
    )
    assert thumb.model_id == "ideogram-v3-turbo" and thumb.inputs["aspect_ratio"] == "16:9"
    assert thumb.inputs["prompt"].startswith("a skyline. cinematic")

    with pytest.raises(InvalidRequestError) as caught:
        await studio.build_request(
            Operation.TEXT_TO_IMAGE,
            user_id=user_id,
            options={"template_id": "myspace_banner"},
            prompt="x",
            options_type=GenerateOptions,
        )
    assert caught.value.fields == ["options.template_id"] and "youtube_thumbnail" in (
        caught.value.errors[0].allowed or ""
    )


def test_model_list_exports_every_model_with_price_limits_and_fields() -> None:
    from typer.testing import CliRunner

    from studio.cli import app

    outcome = CliRunner().invoke(app, ["models", "--json"])
    assert outcome.exit_code == 0, outcome.output
    models = json.loads(outcome.output)
    assert [m["id"] for m in models] == CATALOGUE.ids()
    assert len([m for m in models if m["provider"] == "wavespeed"]) == 46
    for entry in models:
        assert entry["operations"] and Decimal(entry["price_usd"]) >= 0 and entry["inputs"]
        assert entry["output"]["kind"] in ("image", "model_3d", "text")


def test_recommendation_depends_on_plan_and_resolution() -> None:
    from domain.recommend import recommend_model

    free = recommend_model(CATALOGUE, Operation.EDIT, plan="free")
    pro = recommend_model(CATALOGUE, Operation.EDIT, plan="pro")
    assert free.model.price_usd < pro.model.price_usd
    big = recommend_model(CATALOGUE, Operation.UPSCALE, min_resolution=8000)
    assert big.model.max_resolution == "8192*8192"
    assert len(free.alternatives) == 3 and free.model not in free.alternatives


def test_every_operation_draws_on_a_counter_every_plan_limits() -> None:
    """Billing policy lives in domain.quota, not the catalogue; a new operation without a quota
    category, or a category no plan limits, would fail pre-flight for every user."""
    from pathlib import Path

    import yaml

    from domain.quota import QuotaCategory, quota_category

    plans = yaml.safe_load((Path(__file__).parent.parent / "ledger" / "plans.yaml").read_text())
    categories = {quota_category(operation) for operation in Operation}
    assert categories == set(QuotaCategory)
    for plan in plans["plans"]:
        assert set(plan["limits"]) == {c.value for c in QuotaCategory}, plan["id"]
    assert quota_category(Operation.FACE_SWAP) is QuotaCategory.FACE_SWAPS
    assert quota_category(Operation.UPSCALE) is QuotaCategory.EDITS


async def test_a_cached_upload_that_vanished_is_uploaded_again(
    studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    photo = png_bytes(colour=(1, 2, 3))
    await studio.generate_image_upscale(photo, user_id=user_id)
    emulator.reset()  # the provider forgot the upload (retention, account reset)
    result = await studio.generate_image_upscale(photo, user_id=user_id)
    assert len(result.blobs) == 1
    assert emulator.stats()["uploads"] == 1, "the vanished upload was replaced, not reused"
