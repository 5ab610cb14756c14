"""Workflow ids that cannot collide across users, and fingerprints of what a caller asked for.

An id made from caller input is ``<kind>-<user-slug>-<digest>``: the slug is only for people
reading the Temporal UI; the digest (sha256 of the full user id and the full key, each
length-prefixed) is what makes it unique, so ``u-1`` + ``x`` and ``u`` + ``1-x``, or
``alice@x.com`` and ``alice-x.com``, or two users sharing their first 40 characters, never meet.
Without a key the digest is random. Ids stay within 120 characters, with room for a pipeline's
child suffix (``.<step>.<n>``) and a resume's ``-r<n>``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

from contracts.errors import FieldError, InvalidRequestError

DIGEST_CHARS = 20
"""80 bits of sha256: no accidental collision among any realistic number of runs."""
SLUG_CHARS = 16
MAX_KEY_CHARS = 255
"""An idempotency key is the caller's; it is hashed, so any text up to this length works."""
_NOT_SLUG = re.compile(r"[^A-Za-z0-9]+")


def slug(text: str, limit: int = SLUG_CHARS) -> str:
    """A readable hint of ``text`` for an id: letters and digits, ``-`` between runs of them."""
    return _NOT_SLUG.sub("-", text)[:limit].strip("-") or "x"


def keyed_digest(user_id: str, key: str) -> str:
    """The digest of (user, key): different pairs give different digests, whatever they contain."""
    check_key(key)
    material = f"studio-run:{len(user_id)}:{user_id}:{len(key)}:{key}".encode()
    return hashlib.sha256(material).hexdigest()[:DIGEST_CHARS]


def check_key(key: str, field: str = "idempotency_key") -> None:
    """Refuse an empty or oversized key (errors name ``field``)."""
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidRequestError(
            "invalid idempotency key",
            [FieldError(field, "must be 1 to 255 characters", "any text up to 255 characters")],
        )


def _digest(user_id: str, key: str | None) -> str:
    return keyed_digest(user_id, key) if key is not None else secrets.token_hex(DIGEST_CHARS // 2)


def new_operation_id(operation: str, user_id: str, key: str | None = None) -> str:
    """``text_to_image-u42-<digest>``: stable for one user's key, random without one."""
    kind = re.sub(r"[^A-Za-z0-9_]+", "-", operation)[:32] or "operation"
    return f"{kind}-{slug(user_id)}-{_digest(user_id, key)}"


def new_pipeline_id(name: str, user_id: str, key: str | None = None) -> str:
    """``pipeline-<name>-<user>-<digest>``, like ``new_operation_id``; short enough for children."""
    return f"pipeline-{slug(name)}-{slug(user_id)}-{_digest(user_id, key)}"


def fingerprint(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON: equal requests, equal fingerprints."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
