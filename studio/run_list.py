"""A user's runs, newest first, a page at a time: shared by ``studio list``, ``Studio.list_runs``
and ``GET /v1/operations`` / ``GET /v1/pipelines``.

Served from the durable run records in the ledger database (``ledger.run_records``), so a list
outlives Temporal's retention like a single run does. Records of runs still running are checked
with Temporal (one describe each, at most a page): that gives a live status word such as
``awaiting_approval``, and a run that was terminated or timed out (it never writes its own ending)
gets that ending recorded. The cursor is the last run's (start time, id), signed over the filters:
runs started after the first page do not shift later pages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from contracts.errors import FieldError, InvalidRequestError
from contracts.search import STUDIO_MODEL, STUDIO_STATUS
from ledger.run_records import RunInfo, RunRecords

RunKind = Literal["operation", "pipeline"]
MAX_PAGE = 100
RECORD_WORDS = {"cancelled": "canceled"}
"""The record's status words as the API says them (Temporal's spelling)."""
SAME_STATUS = {"cancelled": "canceled", "succeeded": "completed"}
"""Spellings a status filter accepts for the same status."""
FILTER_WORDS: dict[str, tuple[str, ...]] = {
    "canceled": ("cancelled",),
    "cancelled": ("cancelled",),
    "succeeded": ("completed",),
    "awaiting_approval": ("running",),
}
"""A status filter as record statuses (a live word such as ``awaiting_approval`` is a running
record, refined by the live check)."""
CLOSED_BY_TEMPORAL = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}
"""Endings a run cannot write itself: recorded by the list when it finds them."""


@dataclass(frozen=True)
class RunSummary:
    """One run in a list: what it is, how it stands, when it started and ended."""

    id: str
    kind: RunKind
    operation: str | None
    model: str | None
    status: str
    started_at: datetime
    closed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON data (times in ISO 8601)."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["closed_at"] = self.closed_at.isoformat() if self.closed_at else None
        return data


@dataclass(frozen=True)
class RunPage:
    """One page of runs and the cursor of the next (``None`` on the last page)."""

    runs: list[RunSummary]
    cursor: str | None


async def list_runs(
    records: RunRecords,
    client: Client,
    user_id: str,
    *,
    kind: RunKind | None = None,
    status: str | None = None,
    operation: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
    key: bytes,
) -> RunPage:
    """One page (at most ``limit``, ≤ 100) of ``user_id``'s runs, newest first.

    Cursors are signed with ``key`` over the filters (user included), so a cursor from other
    filters, another user or a typo is refused before the database sees it. A ``status`` that
    only a live run has (``awaiting_approval``) may give pages shorter than ``limit``; follow
    ``cursor`` until it is ``None``.

    Raises:
        InvalidRequestError: a cursor that is not one of ours (or from other filters).
    """
    since = since.astimezone(UTC) if since is not None else None
    filters = json.dumps([user_id, kind, status, operation, since.isoformat() if since else None])
    after = _position(cursor, filters, key)
    size = max(1, min(limit, MAX_PAGE))
    statuses = FILTER_WORDS.get(status, (status,)) if status else ()
    found = await asyncio.to_thread(
        records.page,
        user_id,
        kind=kind,
        statuses=statuses,
        operation=operation,
        since=since,
        after=after,
        limit=size + 1,
    )
    more, found = len(found) > size, found[:size]
    summaries = await asyncio.gather(*(_summary(records, client, info) for info in found))
    runs = [run for run in summaries if status is None or _same(run.status, status)]
    cursor = _cursor(found[-1].created_at, found[-1].id, filters, key) if more else None
    return RunPage(runs, cursor)


def _same(shown: str, wanted: str) -> bool:
    return SAME_STATUS.get(shown, shown) == SAME_STATUS.get(wanted, wanted)


async def _summary(records: RunRecords, client: Client, info: RunInfo) -> RunSummary:
    """The run as listed: its record, with a live status while the record says running."""
    status = RECORD_WORDS.get(info.status, info.status)
    model = (info.result or {}).get("model_id") if info.kind == "operation" else None
    closed_at = info.finished_at
    if not info.ended:
        status, model, closed_at = await _live(records, client, info, model)
    return RunSummary(
        id=info.id,
        kind="pipeline" if info.kind == "pipeline" else "operation",
        operation=info.operation or None,
        model=model,
        status=status,
        started_at=_utc(info.created_at),
        closed_at=_utc(closed_at) if closed_at else None,
    )


async def _live(
    records: RunRecords, client: Client, info: RunInfo, model: str | None
) -> tuple[str, str | None, datetime | None]:
    """Temporal's word on a run its record calls running (status, model, close time)."""
    try:
        described = await client.get_workflow_handle(info.id).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return "unknown", model, None  # never started, or forgotten before it wrote its end
    attrs = described.typed_search_attributes
    model = attrs.get(STUDIO_MODEL) or model
    temporal = described.status or WorkflowExecutionStatus.RUNNING
    if temporal == WorkflowExecutionStatus.RUNNING:
        return attrs.get(STUDIO_STATUS) or "running", model, None
    ending = CLOSED_BY_TEMPORAL.get(temporal)
    if ending is not None:
        await asyncio.to_thread(records.finish, info.id, status=ending, now=described.close_time)
    return temporal.name.lower(), model, described.close_time


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive times (stored as UTC); PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _signature(position: str, filters: str, key: bytes) -> str:
    return hmac.new(key, filters.encode() + b"\0" + position.encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def _cursor(created_at: datetime, run_id: str, filters: str, key: bytes) -> str:
    position = json.dumps([created_at.isoformat(), run_id])
    encoded = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    return f"{encoded}.{_signature(position, filters, key)}"


def _position(cursor: str | None, filters: str, key: bytes) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    encoded, _, signature = cursor.partition(".")
    try:
        position = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, ValueError):
        position = ""
    if not position or not hmac.compare_digest(signature, _signature(position, filters, key)):
        raise InvalidRequestError(
            "invalid list request", [FieldError("cursor", "not a cursor for these filters")]
        )
    created, run_id = json.loads(position)
    return datetime.fromisoformat(created), run_id
