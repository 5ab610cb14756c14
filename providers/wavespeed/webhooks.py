"""WaveSpeed webhook signatures (API notes §1.9): ``v3,<hex HMAC-SHA256>`` over
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed with the secret minus its ``whsec_`` prefix
(raw UTF-8, not base64), and at most 300 seconds old."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

MAX_AGE_SECONDS = 300
VERSION = "v3"


class SignatureError(ValueError):
    """The webhook is not provably from WaveSpeed (or is too old to trust)."""


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a body (the emulator and tests sign with it)."""
    key = secret.removeprefix("whsec_").encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{VERSION},{digest}"


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> str:
    """Return the webhook id if the signature and timestamp are good; raise ``SignatureError``."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signature):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not a number") from None
    if abs((now or time.time()) - sent) > MAX_AGE_SECONDS:
        raise SignatureError(f"webhook-timestamp is more than {MAX_AGE_SECONDS} s away from now")
    expected = sign(secret, webhook_id, sent, body)
    # A header may carry several space-separated signatures (key rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in signature.split()):
        raise SignatureError("signature does not match")
    return webhook_id
