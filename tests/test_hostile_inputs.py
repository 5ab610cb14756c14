"""Hostile input: whatever arrives, the answer is a clear error naming a field, never a paid call,
never a crash (property-based, hypothesis)."""

from __future__ import annotations

import asyncio
import io
import struct
import tempfile
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from temporalio.client import Client, WorkflowFailureError

from emulator.server import EmulatorServer
from providers.catalogue import Operation, load_catalogue
from studio.api import Studio
from studio.blobs import BlobStore
from studio.contracts import OperationRequest
from studio.errors import InvalidRequestError
from studio.options import GenerateOptions, OperationOptions
from studio.pipelines.definition import load_definition
from studio.pipelines.plan import plan_pipeline
from studio.settings import StudioSettings
from studio.url_guard import address_problem
from workflows.operation import ImageOperationWorkflow

CATALOGUE = load_catalogue()
SETTINGS = StudioSettings(
    data_dir=Path(tempfile.mkdtemp(prefix="hostile-")), wavespeed_base_url="http://127.0.0.1:9"
)
QUICK = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
option_keys = st.sampled_from(
    [
        "model",
        "num_variations",
        "seed",
        "size",
        "width",
        "height",
        "output_format",
        "template_id",
        "aspect_ratio",
        "style_preset",
        "quality",
        "extra",
        "idempotency_key",
        "../../etc",
        "__class__",
    ]
)
hostile_text = st.text(max_size=60) | st.sampled_from(
    ["", "../../etc/passwd", "\x00", "💥" * 50, "a" * 10_000]
)


@QUICK
@given(
    operation=st.sampled_from(list(Operation)),
    model=st.none() | st.sampled_from(CATALOGUE.ids()) | hostile_text,
    options=st.dictionaries(option_keys, json_values, max_size=6),
    params=st.dictionaries(st.text(max_size=20), json_values, max_size=5),
    prompt=st.none() | hostile_text,
    user=st.sampled_from(["u1", "", "../x", "a" * 300, "ok.user@x"]),
)
def test_any_request_is_valid_or_refused_with_named_fields(
    operation, model, options, params, prompt, user
) -> None:
    studio = Studio(None, _settings())
    options_type = GenerateOptions if operation is Operation.TEXT_TO_IMAGE else OperationOptions
    try:
        request = asyncio.run(
            studio.build_request(
                operation,
                user,
                {**options, "model": model},
                prompt=prompt,
                params=params,
                options_type=options_type,
            )
        )
    except InvalidRequestError as exc:
        assert exc.errors and all(e.field for e in exc.errors), exc
        return
    assert isinstance(request, OperationRequest)
    CATALOGUE.get(request.model_id).validate_inputs(
        request.inputs
    )  # what passed is what the model takes


steps = st.fixed_dictionaries(
    {
        "name": hostile_text | st.sampled_from(["a", "b", "c"]),
        "operation": st.sampled_from([o.value for o in Operation] + ["crop", "rm -rf"]),
    },
    optional={
        "inputs": st.dictionaries(
            st.sampled_from(["base", "face", "mask", "x"]),
            st.sampled_from(
                ["a", "b[0]", "c[*]", "a.best", "/etc/passwd", "blob:zz", "https://10.0.0.1/x"]
            ),
            max_size=2,
        ),
        "params": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
        "variations": st.integers(-5, 20),
        "prompt": hostile_text,
        "model": st.sampled_from(CATALOGUE.ids()) | hostile_text,
    },
)


@QUICK
@given(
    definition=st.fixed_dictionaries({"name": hostile_text, "steps": st.lists(steps, max_size=5)})
    | json_values
)
def test_any_pipeline_definition_is_planned_or_refused_with_named_fields(definition) -> None:
    try:
        plan_pipeline(
            load_definition(definition if isinstance(definition, dict) else {"x": definition}),
            CATALOGUE,
        )
    except InvalidRequestError as exc:
        assert exc.errors and all(e.field for e in exc.errors)


@QUICK
@given(content=st.binary(max_size=4096))
def test_arbitrary_upload_bytes_are_refused_as_not_an_image(content: bytes) -> None:
    studio = Studio(None, _settings())
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(content, field="images.base"))
    assert caught.value.fields == ["images.base"]


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "content",
    [
        _png_header_only(100_000, 100_000),  # a decompression bomb: refused on the header alone
        _png_header_only(20_000, 20_000),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,  # truncated
        b"\xff\xd8\xff\xe0" + b"\x00" * 32,  # a JPEG that stops after its marker
        b"GIF89a" + b"\xff" * 20,
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["bomb-100k", "bomb-20k", "truncated-png", "truncated-jpeg", "broken-gif", "svg"],
)
def test_malformed_and_huge_images_are_refused(content: bytes) -> None:
    studio = Studio(None, _settings())
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(content, field="images.base"))
    assert caught.value.fields == ["images.base"]


def test_oversized_uploads_are_refused_before_decoding(tmp_path) -> None:
    studio = Studio(None, _settings().model_copy(update={"max_input_bytes": 1000}))
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 50).convert("RGB").save(buffer, format="PNG")
    with pytest.raises(InvalidRequestError, match="limit is 1000"):
        asyncio.run(studio._ingestor.ingest(buffer.getvalue(), field="images.base"))


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "..", "ab/../../x", "a" * 63, "G" * 64, "/etc/passwd"]
)
def test_blob_names_cannot_escape_the_store(tmp_path, name: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(ValueError):
        store.path_for(name)


@QUICK
@given(
    address=st.one_of(
        st.ip_addresses(v=4, network="10.0.0.0/8"),
        st.ip_addresses(v=4, network="127.0.0.0/8"),
        st.ip_addresses(v=4, network="169.254.0.0/16"),
        st.ip_addresses(v=4, network="172.16.0.0/12"),
        st.ip_addresses(v=4, network="192.168.0.0/16"),
        st.ip_addresses(v=4, network="100.64.0.0/10"),
        st.ip_addresses(v=6, network="fc00::/7"),
        st.ip_addresses(v=6, network="::1/128"),
        st.ip_addresses(v=6, network="fe80::/10"),
    )
)
def test_private_addresses_are_never_fetched(address) -> None:
    assert address_problem(str(address)) is not None
    studio = Studio(None, _settings())
    host = f"[{address}]" if address.version == 6 else str(address)
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(f"https://{host}/cat.png", field="images.base"))
    assert "refused" in str(caught.value)


@pytest.mark.parametrize(
    "inputs",
    [
        {"prompt": "x", "size": "99999*99999"},
        {"prompt": "x", "../../etc": 1},
        {"prompt": {"$gt": ""}},
        {
            "prompt": "x",
            "image": {
                "sha256": "0" * 64,
                "size": 1,
                "media_type": "image/png",
                "location": "file:///etc/passwd",
            },
        },
        {},
    ],
    ids=["huge-size", "traversal-field", "object-prompt", "foreign-blob", "empty"],
)
async def test_hostile_requests_started_directly_never_pay_and_never_crash_the_worker(
    inputs: dict, client: Client, studio: Studio, emulator: EmulatorServer, user_id: str
) -> None:
    """Bypassing the client's validation: pre-flight refuses, nothing is submitted, the worker lives on."""
    before = emulator.stats()["submit_requests"]
    request = OperationRequest(
        operation_id=f"hostile-{uuid.uuid4().hex[:8]}",
        user_id=user_id,
        operation="text_to_image",
        model_id="qwen-image",
        inputs=inputs,
    )
    with pytest.raises(WorkflowFailureError) as caught:
        await client.execute_workflow(
            ImageOperationWorkflow.run,
            request,
            id=request.operation_id,
            task_queue=studio.settings.task_queue,
        )
    assert caught.value.cause.type == "InvalidRequest"  # type: ignore[union-attr]
    assert emulator.stats()["submit_requests"] == before
    healthy = await studio.generate_image("the worker is still fine", None, user_id)
    assert healthy.blobs


def _settings() -> StudioSettings:
    return SETTINGS
