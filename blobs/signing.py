"""Signed, expiring download URLs served by our own HTTP API (the local blob store's answer to
S3 presigned URLs): ``/v1/blobs/{sha256}?expires=<unix time>&sig=<hmac>``.

The signature is an HMAC-SHA256 over the hash and the expiry with a key only the API hosts and
trusted clients hold, so a link works in an ``<img src>`` without credentials, for that one file,
until it expires; changing either number breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import StudioSettings

KEY_FILE = "url-signing.key"


@dataclass(frozen=True)
class UrlSigner:
    """Signs and checks download links with one HMAC key."""

    key: bytes = field(repr=False)
    base_url: str
    """Where browsers reach the API, e.g. ``https://studio.example.com`` (no trailing slash)."""

    def signature(self, sha256: str, expires: int) -> str:
        """HMAC-SHA256 (hex) of the hash and the expiry."""
        message = f"{sha256}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def url(self, sha256: str, *, expires_in: int, now: float | None = None) -> str:
        """A link to ``sha256`` that works for ``expires_in`` seconds."""
        expires = int((time.time() if now is None else now) + expires_in)
        return (
            f"{self.base_url}/v1/blobs/{sha256}"
            f"?expires={expires}&sig={self.signature(sha256, expires)}"
        )

    def valid(self, sha256: str, expires: int, sig: str, *, now: float | None = None) -> bool:
        """True for an unexpired link signed with our key (constant-time comparison)."""
        if expires < (time.time() if now is None else now):
            return False
        # compare_digest refuses non-ASCII str (TypeError): compare bytes, so any sig is just wrong.
        return hmac.compare_digest(
            self.signature(sha256, expires).encode(), sig.encode("utf-8", "surrogatepass")
        )


def url_signer(settings: StudioSettings) -> UrlSigner:
    """The signer for these settings: ``STUDIO_URL_SIGNING_KEY`` or the data directory's key."""
    if settings.url_signing_key is not None:
        key = settings.url_signing_key.get_secret_value().encode()
    else:
        key = _local_key(settings.data_dir / KEY_FILE)
    return UrlSigner(key=key, base_url=settings.api_base_url)


WEBHOOK_KEY_FILE = "caller-webhook.key"


def webhook_secret(settings: StudioSettings) -> str:
    """The Standard Webhooks secret (``whsec_<base64>``) that signs webhooks to callers:
    ``STUDIO_CALLER_WEBHOOK_SECRET``, or a key kept in the data directory (embedded stack)."""
    if settings.caller_webhook_secret is not None:
        return settings.caller_webhook_secret.get_secret_value()
    key = bytes.fromhex(_local_key(settings.data_dir / WEBHOOK_KEY_FILE).decode())
    return "whsec_" + base64.b64encode(key).decode()


def _local_key(path: Path) -> bytes:
    """A random key kept next to the embedded stack's data (created once, readable by us only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
