"""What the emulator remembers about one prediction or upload, and how the API shows it.

Plain records (the state's lock guards them) and the pure functions that turn one into the JSON
WaveSpeed answers with: timestamps in WaveSpeed's nanosecond RFC 3339 shape, the prediction object,
and the admin view tests assert on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from emulator.faults import FaultRule
from emulator.render import OutputPlan

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "deleted"})


def rfc3339_ns(wall_ns: int) -> str:
    """``2025-05-19T06:09:15.948268264Z``: WaveSpeed's timestamp shape (nanoseconds, Z)."""
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_rfc3339_ns(value: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 string (any fraction length, Z or offset)."""
    text = value.strip().replace("z", "Z")
    head, dot, rest = text.partition(".")
    fraction = ""
    zone = ""
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for marker in ("Z", "+", "-"):
            index = head.find(marker, 10)
            if index != -1:
                head, zone = head[:index], head[index:]
                break
    zone = "+00:00" if zone in ("", "Z") else zone
    base = datetime.fromisoformat(head + zone)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(base.timestamp()) * 1_000_000_000 + nanos


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible label for an API key (the key itself is never stored)."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass
class PredictionRecord:
    """One prediction and everything the emulator remembers about it."""

    id: str
    seq: int
    model: str
    input: dict[str, Any]
    plan: OutputPlan
    price: Decimal
    base_url: str
    created_ns: int
    created_mono: float
    ready_at: float
    webhook_url: str | None = None
    base64_output: bool = False
    outcome: tuple[str, int | None, str] | None = None
    """Forced end (status, task code, error) from a fault or an unreachable input URL."""
    expire_outputs: bool = False
    webhook_faults: list[FaultRule] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    api_key_fingerprint: str = ""
    client: dict[str, str] = field(default_factory=dict)
    status: str = "created"
    started_at: float | None = None
    finish_at: float | None = None
    ended_at: float | None = None
    code: int | None = None
    error: str = ""
    timeline: list[dict[str, str]] = field(default_factory=list)
    polls: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    billed: Decimal = Decimal(0)

    def wall_ns(self, mono: float) -> int:
        return self.created_ns + int((mono - self.created_mono) * 1e9)

    def move(self, status: str, at: float) -> None:
        self.status = status
        self.timeline.append({"status": status, "at": rfc3339_ns(self.wall_ns(at))})


@dataclass
class UploadRecord:
    id: str
    filename: str
    media_type: str
    kind: str
    declared_size: int
    created_ns: int
    data: bytes | None = None


def default_outputs(record: PredictionRecord) -> list[Any]:
    """A completed prediction's outputs: its file URLs, or its strings for text models."""
    if record.plan.kind == "text":
        return list(record.plan.texts)
    return [
        f"{record.base_url}/outputs/{record.id}/{i}.{record.plan.ext}"
        for i in range(record.plan.count)
    ]


def prediction_view(
    record: PredictionRecord, *, outputs: list[Any] | None = None, include_input: bool = True
) -> dict[str, Any]:
    """The prediction object exactly as the API shows it.

    ``outputs`` replaces the default output list (base64 strings); by default a completed
    prediction lists its file URLs, or its strings for text models.
    """
    r = record
    if outputs is None:
        outputs = default_outputs(r) if r.status == "completed" else []
    inference_ms = 0
    if r.started_at is not None and r.ended_at is not None:
        inference_ms = round((r.ended_at - r.started_at) * 1000)
    execution_ms = round((r.ended_at - r.created_mono) * 1000) if r.ended_at else 0
    data: dict[str, Any] = {
        "id": r.id,
        "model": r.model,
        "outputs": outputs,
        "urls": {"get": f"{r.base_url}/api/v3/predictions/{r.id}/result"},
        "has_nsfw_contents": [False] * len(outputs),
        "status": r.status,
        "created_at": rfc3339_ns(r.created_ns),
        "error": r.error,
        "timings": {"inference": inference_ms},
        "executionTime": execution_ms,
    }
    if include_input:
        data = {"id": r.id, "model": r.model, "input": dict(r.input), **data}
    if r.code is not None and r.status in ("failed", "timeout"):
        data["code"] = r.code
    return data


def admin_view(record: PredictionRecord) -> dict[str, Any]:
    """What a test may want to assert about a prediction (never the API key itself)."""
    return {
        "id": record.id,
        "model": record.model,
        "input": dict(record.input),
        "status": record.status,
        "created_at": rfc3339_ns(record.created_ns),
        "timeline": list(record.timeline),
        "polls": record.polls,
        "webhook_url": record.webhook_url,
        "webhook_deliveries": [dict(d) for d in record.deliveries],
        "faults": list(record.faults),
        "code": record.code,
        "error": record.error,
        "price": float(record.price),
        "billed": float(record.billed),
        "api_key_fingerprint": record.api_key_fingerprint,
        "client": dict(record.client),
    }
