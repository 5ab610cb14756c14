"""Hostile input: whatever arrives, the answer is a clear error naming a field, never a paid call,
never a crash (property-based, hypothesis).

The client under test talks to the WaveSpeed emulator (a real provider endpoint), and every
property checks the emulator's counters afterwards: a refused input reached no paid endpoint. Each
property asserts something on both branches (refused: the fields named; accepted: what it became).
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import tempfile
import uuid
import zlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from temporalio.client import Client, WorkflowFailureError

from blobs.local import LocalBlobStore
from config.settings import StudioSettings
from contracts.errors import InvalidRequestError
from contracts.operation import OperationRequest
from domain.options import GenerateOptions, OperationOptions
from domain.pipelines.definition import load_definition
from domain.pipelines.plan import plan_pipeline
from emulator.server import EmulatorServer
from providers.catalogue import Operation, load_catalogue
from providers.url_guard import UnsafeUrlError, UrlFetchError, address_problem, fetch_public_url
from studio.api import Studio
from tests.conftest import API_KEY
from workflows.operation import ImageOperationWorkflow

CATALOGUE = load_catalogue()
PAID = ("submit_requests", "predictions_created")
"""The emulator's counters of paid calls: no hostile input may move them."""


@pytest.fixture(scope="module")
def hostile_settings(emulator: EmulatorServer) -> StudioSettings:
    """A client pointed at the emulator, so a provider call would be seen (and counted)."""
    return StudioSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="hostile-")),
        wavespeed_base_url=emulator.url,
        wavespeed_api_key=API_KEY,
    )


class Counters:
    """The emulator's counters before an example; ``unchanged`` asserts none of ``names`` moved."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self._emulator = emulator
        self._before = emulator.stats()

    def unchanged(self, *names: str) -> None:
        after = self._emulator.stats()
        moved = {n: (self._before[n], after[n]) for n in names if after[n] != self._before[n]}
        assert not moved, f"a hostile input reached the provider: {moved}"


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
        "../../etc",
        "__class__",
    ]
)
hostile_text = st.text(max_size=60) | st.sampled_from(
    ["", "../../etc/passwd", "\x00", "💥" * 50, "a" * 10_000]
)


hostile_requests = st.fixed_dictionaries(
    {
        "operation": st.sampled_from(list(Operation)),
        "model": st.none() | st.sampled_from(CATALOGUE.ids()) | hostile_text,
        "options": st.dictionaries(option_keys, json_values, max_size=6),
        "params": st.dictionaries(st.text(max_size=20), json_values, max_size=5),
        "prompt": st.none() | hostile_text,
        "user": st.sampled_from(["u1", "", "../x", "a" * 300, "ok.user@x"]),
    }
)
TEXT_TO_IMAGE_MODELS = [
    i for i in CATALOGUE.ids() if Operation.TEXT_TO_IMAGE in CATALOGUE.get(i).operations
]
plausible_requests = st.fixed_dictionaries(
    {
        "operation": st.just(Operation.TEXT_TO_IMAGE),
        "model": st.none() | st.sampled_from(TEXT_TO_IMAGE_MODELS),
        "options": st.fixed_dictionaries(
            {},
            optional={"seed": st.integers(-5, 2**40), "num_variations": st.integers(-1, 6)},
        ),
        "params": st.just({}),
        "prompt": st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=40),
        "user": st.sampled_from(["u1", "ok.user@x"]),
    }
)
"""Mostly valid requests, so the accepted branch runs too (and must pass validation again)."""


@QUICK
@given(case=hostile_requests | plausible_requests)
def test_any_request_is_valid_or_refused_with_named_fields(
    hostile_settings, emulator, case
) -> None:
    operation, model, options, params, prompt, user = (
        case[k] for k in ("operation", "model", "options", "params", "prompt", "user")
    )
    studio = Studio(None, hostile_settings)
    counters = Counters(emulator)
    options_type = GenerateOptions if operation is Operation.TEXT_TO_IMAGE else OperationOptions
    try:
        request = asyncio.run(
            studio.build_request(
                operation,
                user_id=user,
                options={**options, "model": model},
                prompt=prompt,
                params=params,
                options_type=options_type,
            )
        )
    except InvalidRequestError as exc:
        assert exc.errors and all(e.field for e in exc.errors), exc
        counters.unchanged(*PAID, "uploads")
        event("request refused")
        return
    event("request accepted")
    assert isinstance(request, OperationRequest)
    assert request.user_id == user and request.model_id in CATALOGUE.ids()
    CATALOGUE.get(request.model_id).validate_inputs(
        request.inputs
    )  # what passed is what the model takes
    counters.unchanged(*PAID)  # building a request pays for nothing


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


EXAMPLES = [
    yaml.safe_load(f.read_text())
    for f in sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))
]
"""The shipped pipelines: definitions that must plan (the accepted branch)."""


@QUICK
@given(
    definition=st.fixed_dictionaries({"name": hostile_text, "steps": st.lists(steps, max_size=5)})
    | json_values
    | st.sampled_from(EXAMPLES)
)
def test_any_pipeline_definition_is_planned_or_refused_with_named_fields(
    emulator, definition
) -> None:
    counters = Counters(emulator)
    try:
        plan = plan_pipeline(
            load_definition(definition if isinstance(definition, dict) else {"x": definition}),
            CATALOGUE,
        )
    except InvalidRequestError as exc:
        assert exc.errors and all(e.field for e in exc.errors)
        counters.unchanged(*PAID)
        event("definition refused")
        return
    event("definition planned")
    # Planned: every defined step, once, each after what it depends on, priced from the catalogue.
    names = [p.step.name for p in plan.steps]
    assert sorted(names) == sorted(s["name"] for s in definition["steps"])
    assert len(set(names)) == len(names)
    for i, planned in enumerate(plan.steps):
        assert set(planned.depends_on) <= set(names[:i]), f"{planned.step.name} before its inputs"
        assert planned.spec is None or planned.spec.id in CATALOGUE.ids()
        assert planned.worst_case >= 0
    counters.unchanged(*PAID)


@QUICK
@given(content=st.binary(max_size=4096))
def test_arbitrary_upload_bytes_are_refused_as_not_an_image(
    hostile_settings, emulator, content: bytes
) -> None:
    studio = Studio(None, hostile_settings)
    counters = Counters(emulator)
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(content, field="images.base"))
    assert caught.value.fields == ["images.base"]
    counters.unchanged(*PAID, "uploads")


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
def test_malformed_and_huge_images_are_refused(hostile_settings, content: bytes) -> None:
    studio = Studio(None, hostile_settings)
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(content, field="images.base"))
    assert caught.value.fields == ["images.base"]


def test_oversized_uploads_are_refused_before_decoding(hostile_settings) -> None:
    studio = Studio(None, hostile_settings.model_copy(update={"max_input_bytes": 1000}))
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 50).convert("RGB").save(buffer, format="PNG")
    with pytest.raises(InvalidRequestError, match="limit is 1000"):
        asyncio.run(studio._ingestor.ingest(buffer.getvalue(), field="images.base"))


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..",
        "ab/../../x",
        "../" * 21 + "a",  # 64 characters: right length, wrong alphabet
        "a" * 63,
        "G" * 64,
        "/etc/passwd",
        "a" * 64 + "\n",
        "a\x00" * 32,
    ],
)
def test_blob_names_cannot_escape_the_store(tmp_path, name: str) -> None:
    """The store's only guard is that a name is a sha256 hex digest; the message shows that guard,
    not some accident (an OSError on a NUL byte, a missing file), refused the name."""
    store = LocalBlobStore(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        store.path_for(name)
    assert sorted(tmp_path.rglob("*")) == before, "nothing was created on the way"


@QUICK
@given(digest=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_every_accepted_blob_name_stays_inside_the_store(digest: str) -> None:
    """The other branch: what the hex guard lets through resolves under the store's root."""
    root = Path(tempfile.mkdtemp(prefix="blobs-"))
    path = LocalBlobStore(root).path_for(digest)
    assert path.resolve().is_relative_to(root.resolve()) and path.name == digest


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
def test_private_addresses_are_never_fetched(hostile_settings, emulator, address) -> None:
    assert address_problem(str(address)) is not None
    studio = Studio(None, hostile_settings)
    counters = Counters(emulator)
    host = f"[{address}]" if address.version == 6 else str(address)
    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(studio._ingestor.ingest(f"https://{host}/cat.png", field="images.base"))
    assert "refused" in str(caught.value) and caught.value.fields == ["images.base"]
    counters.unchanged(*PAID, "uploads")


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
    healthy = await studio.generate_image("the worker is still fine", user_id=user_id)
    assert healthy.blobs


def test_dns_rebinding_gains_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11 item 7: the guard resolved a name, checked it, then let the HTTP client resolve it
    again, so a name answering "public" then "127.0.0.1" reached a local server (the peer check
    came after the GET was sent; this test saw 1 connection and 2 lookups before the fix). Now the
    name is resolved once and the socket goes to the checked address."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[object] = []

    def rebinding_dns(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in ("rebind.example", b"rebind.example"):
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        address = "8.8.8.8" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)

    async def attempt() -> int:
        connections = 0

        def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            writer.close()

        server = await asyncio.start_server(count, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises((UrlFetchError, UnsafeUrlError)):
                await fetch_public_url(
                    f"https://rebind.example:{port}/cat.png", max_bytes=1024, timeout=3
                )
        return connections

    assert asyncio.run(attempt()) == 0, "the request reached the rebound (local) address"
    assert len(lookups) == 1, f"the name must be resolved exactly once, not {lookups}"


def test_a_name_pointing_inside_is_refused_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def inside_dns(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in ("inside.example", b"inside.example"):
            return real_getaddrinfo(host, port, *args, **kwargs)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", inside_dns)
    with pytest.raises(UnsafeUrlError, match="10.0.0.7"):
        asyncio.run(fetch_public_url("https://inside.example/x.png", max_bytes=1024, timeout=3))
