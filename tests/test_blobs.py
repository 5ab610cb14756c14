"""The blob store protocol, on a local directory and on a real S3-protocol server (moto).

Same promises on both: content-addressed, verified before named, idempotent, ``blob:<sha256>``
locations only, corruption detected, and a download URL that serves the bytes to anyone holding
it without credentials, until it expires.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from PIL import Image

from blobs.imaging import ImageTooLargeError, best_index, crop_to_sizes
from blobs.media import MediaError
from blobs.open_store import open_blob_store
from blobs.s3 import S3BlobStore
from blobs.signing import UrlSigner, url_signer
from blobs.store import BlobNotFoundError, BlobStore
from config.settings import StudioSettings
from contracts.operation import BlobRef, OutputKind
from tests.conftest import S3Server


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 20 + seed).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    settings = StudioSettings(data_dir=tmp_path)
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        settings = server.settings(settings)
    return open_blob_store(settings)


def test_put_get_read_round_trip_with_content_addresses_only(store: BlobStore) -> None:
    data = png(1)
    ref = store.put_bytes(data, OutputKind.IMAGE)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.location == f"blob:{ref.sha256}", "no server path, no bucket URL"
    assert (ref.media_type, ref.width, ref.height, ref.format) == ("image/png", 64, 48, "png")
    assert store.get(ref.sha256) == ref
    assert store.read_bytes(ref) == data == b"".join(store.iter_bytes(ref, 1000))
    assert store.exists(ref) and store.verify(ref)
    assert store.put_bytes(data, OutputKind.IMAGE) == ref, "storing twice is a no-op"


async def test_streamed_puts_are_hashed_on_the_way_and_bounded(store: BlobStore) -> None:
    data = png(2, (300, 200))

    async def chunks(payload: bytes):  # type: ignore[no-untyped-def]
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]

    ref = await store.put_stream(chunks(data), OutputKind.IMAGE, max_bytes=len(data))
    assert store.read_bytes(ref) == data
    with pytest.raises(MediaError, match="larger than"):
        await store.put_stream(chunks(png(3, (300, 200))), OutputKind.IMAGE, max_bytes=100)


def test_what_is_not_what_it_claims_is_never_named(store: BlobStore) -> None:
    fake = b"<html>not an image</html>"
    with pytest.raises(MediaError):
        store.put_bytes(fake, OutputKind.IMAGE)
    with pytest.raises(BlobNotFoundError):
        store.get(hashlib.sha256(fake).hexdigest())


def test_a_legacy_file_location_becomes_a_content_address() -> None:
    sha = "ab" * 32
    ref = BlobRef(sha256=sha, size=1, media_type="image/png", location="file:///etc/passwd")
    assert ref.location == f"blob:{sha}"


def test_local_corruption_is_detected(tmp_path: Path) -> None:
    store = open_blob_store(StudioSettings(data_dir=tmp_path))
    ref = store.put_bytes(png(4), OutputKind.IMAGE)
    path = tmp_path / "blobs" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert not store.verify(ref)


def test_s3_corruption_is_detected(s3_server: S3Server, tmp_path: Path) -> None:
    store = open_blob_store(s3_server.settings(StudioSettings(data_dir=tmp_path)))
    assert isinstance(store, S3BlobStore)
    ref = store.put_bytes(png(5), OutputKind.IMAGE)
    # Someone overwrites the object behind our back (no checksum this time).
    store._s3.put_object(Bucket=store.bucket, Key=store.key_for(ref.sha256), Body=b"garbage")
    assert not store.verify(ref)


def test_download_urls_serve_the_bytes_without_credentials(
    s3_server: S3Server, tmp_path: Path
) -> None:
    settings = s3_server.settings(StudioSettings(data_dir=tmp_path, download_url_ttl_seconds=90))
    store = open_blob_store(settings)
    data = png(6)
    ref = store.put_bytes(data, OutputKind.IMAGE)
    url = store.download_url(ref, expires_in=90)
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Expires"] == ["90"] and query["X-Amz-Signature"], url
    response = httpx.get(url)  # no credentials of any kind
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"] == "image/png"


def test_presigned_urls_name_the_public_endpoint(s3_server: S3Server, tmp_path: Path) -> None:
    settings = s3_server.settings(StudioSettings(data_dir=tmp_path)).model_copy(
        update={"s3_public_endpoint_url": "https://files.example.com"}
    )
    store = open_blob_store(settings)
    ref = store.put_bytes(png(7), OutputKind.IMAGE)
    assert store.download_url(ref, expires_in=60).startswith("https://files.example.com/")


def test_signed_api_links_expire_and_cannot_be_altered(tmp_path: Path) -> None:
    signer = UrlSigner(key=b"k" * 32, base_url="https://studio.example.com")
    sha = "cd" * 32
    url = signer.url(sha, expires_in=60, now=1000.0)
    assert url.startswith(f"https://studio.example.com/v1/blobs/{sha}?expires=1060&sig=")
    sig = parse_qs(urlparse(url).query)["sig"][0]
    assert signer.valid(sha, 1060, sig, now=1059.0)
    assert not signer.valid(sha, 1060, sig, now=1061.0), "expired"
    assert not signer.valid(sha, 2060, sig, now=1059.0), "expiry moved"
    assert not signer.valid("ef" * 32, 1060, sig, now=1059.0), "another file"
    other = UrlSigner(key=b"x" * 32, base_url="https://studio.example.com")
    assert not other.valid(sha, 1060, sig, now=1059.0), "another key"
    # Found by the HTTP fuzz test: a non-ASCII signature is a wrong one, not a server error.
    assert not signer.valid(sha, 1060, "é" + sig[1:], now=1059.0)
    assert not signer.valid(sha, 1060, "\udcff", now=1059.0)


def test_the_local_signing_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = StudioSettings(data_dir=tmp_path)
    first, second = url_signer(settings), url_signer(settings)
    assert first.key == second.key and len(first.key) == 64
    assert (tmp_path / "url-signing.key").stat().st_mode & 0o077 == 0
    assert "key" not in repr(first).replace("base_url", ""), "the key never shows in repr"


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="STUDIO_S3_BUCKET"):
        StudioSettings(blob_backend="s3")


CROP_MEMORY_PROBE = """
import io, resource
from PIL import Image
from blobs.imaging import crop_to_sizes
buf = io.BytesIO()
Image.new("1", (6000, 6000), 1).save(buf, format="PNG", optimize=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = crop_to_sizes(buf.getvalue(), [(1080, 1080), (1080, 1920), (1200, 630)], max_pixels=40_000_000)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, *(Image.open(io.BytesIO(o)).size for o in out))
"""


def test_crops_within_the_budget_use_memory_of_the_targets_not_the_source() -> None:
    """A 6000x6000 1-bit PNG (36 Mpx, 11 KB) is 108 MB once in RGB; cropping it to three formats
    must peak well below that (measured: ~67 MB), in a fresh process so the peak is its own."""
    probe = subprocess.run(
        [sys.executable, "-c", CROP_MEMORY_PROBE], capture_output=True, text=True, check=True
    )
    grown_mib, sizes = probe.stdout.strip().split(" ", 1)
    assert int(grown_mib) < 100, f"cropping grew the process by {grown_mib} MiB"
    assert sizes == "(1080, 1080) (1080, 1920) (1200, 630)"


def test_an_image_over_the_local_budget_is_refused_from_its_header() -> None:
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000), 1).save(buf, format="PNG", optimize=True)
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        crop_to_sizes(buf.getvalue(), [(100, 100)], max_pixels=40_000_000)
    with pytest.raises(ImageTooLargeError):
        best_index([buf.getvalue()], max_pixels=40_000_000)
