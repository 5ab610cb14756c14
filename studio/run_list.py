"""A user's runs, newest first, a page at a time: shared by ``studio list``, ``Studio.list_runs``
and ``GET /v1/operations`` / ``GET /v1/pipelines``.

Served from Temporal's visibility store with the search attributes every run carries
(``StudioUser``, ``StudioOperation``, ``StudioStatus``), always scoped to one user. The cursor is
the server's page token (opaque, bound to the same filters): runs started after the first page
do not shift later pages. Visibility keeps closed runs for the namespace's retention period only;
a durable run record in the ledger (issue 11) would outlive it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from contracts.errors import FieldError, InvalidRequestError
from contracts.search import STUDIO_MODEL, STUDIO_OPERATION, STUDIO_STATUS, STUDIO_USER

RunKind = Literal["operation", "pipeline"]
WORKFLOW_TYPES: dict[RunKind, str] = {"operation": "ImageOperation", "pipeline": "ImagePipeline"}
MAX_PAGE = 100


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


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def visibility_query(
    user_id: str,
    *,
    kind: RunKind | None = None,
    status: str | None = None,
    operation: str | None = None,
    since: datetime | None = None,
) -> str:
    """The list filter for one user's runs (values quoted; the user filter is always there)."""
    parts = [f"{STUDIO_USER.name} = '{_quoted(user_id)}'"]
    types = [WORKFLOW_TYPES[kind]] if kind else list(WORKFLOW_TYPES.values())
    parts.append("WorkflowType IN (" + ", ".join(f"'{t}'" for t in types) + ")")
    if status:
        parts.append(f"{STUDIO_STATUS.name} = '{_quoted(status)}'")
    if operation:
        parts.append(f"{STUDIO_OPERATION.name} = '{_quoted(operation)}'")
    if since:
        parts.append(f"StartTime >= '{since.isoformat()}'")
    return " AND ".join(parts)  # visibility lists newest first (ORDER BY: Elasticsearch only)


async def list_runs(
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
    filters, another user or a typo is refused before the server sees it.

    Raises:
        InvalidRequestError: a cursor that is not one of ours (or from other filters).
    """
    query = visibility_query(user_id, kind=kind, status=status, operation=operation, since=since)
    token = _token(cursor, query, key)
    pages = client.list_workflows(
        query, page_size=max(1, min(limit, MAX_PAGE)), next_page_token=token
    )
    try:
        await pages.fetch_next_page()
    except RPCError as exc:
        if exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        raise InvalidRequestError(
            "invalid list request", [FieldError("cursor", "not a cursor for these filters")]
        ) from None
    runs = []
    for run in pages.current_page or []:
        attrs = run.typed_search_attributes
        ended = run.status not in (None, WorkflowExecutionStatus.RUNNING)
        runs.append(
            RunSummary(
                id=run.id,
                kind="pipeline" if run.workflow_type == WORKFLOW_TYPES["pipeline"] else "operation",
                operation=attrs.get(STUDIO_OPERATION),
                model=attrs.get(STUDIO_MODEL),
                status=_status(attrs.get(STUDIO_STATUS), run.status),
                started_at=run.start_time,
                closed_at=run.close_time if ended else None,
            )
        )
    next_token = pages.next_page_token
    return RunPage(runs, _cursor(next_token, query, key) if next_token else None)


def _status(attribute: str | None, status: WorkflowExecutionStatus | None) -> str:
    """The run's own status word when it set one; else Temporal's (``completed``, ``failed``…)."""
    temporal = (status or WorkflowExecutionStatus.RUNNING).name.lower()
    if status in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
        return attribute or temporal
    return temporal if attribute in (None, "running") else attribute


def _signature(token: bytes, query: str, key: bytes) -> str:
    return hmac.new(key, query.encode() + b"\0" + token, hashlib.sha256).hexdigest()[:32]


def _cursor(token: bytes, query: str, key: bytes) -> str:
    encoded = base64.urlsafe_b64encode(token).decode().rstrip("=")
    return f"{encoded}.{_signature(token, query, key)}"


def _token(cursor: str | None, query: str, key: bytes) -> bytes | None:
    if not cursor:
        return None
    encoded, _, signature = cursor.partition(".")
    try:
        token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        token = b""
    if not token or not hmac.compare_digest(signature, _signature(token, query, key)):
        raise InvalidRequestError(
            "invalid list request", [FieldError("cursor", "not a cursor for these filters")]
        )
    return token
