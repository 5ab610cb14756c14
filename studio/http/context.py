"""What every route needs: the app's shared context, the caller's identity, and run lookups.

The calling backend asserts who the user is (``X-Studio-User``), authenticated by a bearer token
when keys are configured (``STUDIO_API_KEYS``, named and rotatable, or ``STUDIO_API_TOKEN``). A user only ever sees their own runs and files: anything else is
a 404, so ids and hashes reveal nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from config.settings import StudioSettings
from contracts.errors import QuotaExceededError
from contracts.operation import OperationResult
from contracts.pipeline import PipelineResult
from contracts.search import STUDIO_USER
from domain.run_ids import MAX_KEY_CHARS
from ledger.run_records import RunInfo
from ledger.submissions import SubmissionBook
from studio.api import Studio
from studio.http.errors import error_body
from studio.http.schemas import ErrorBody, Links, Started
from studio.outcomes import failure_from_record, failure_from_workflow
from studio.temporal import ui_url
from workflows.operation import ImageOperationWorkflow
from workflows.pipeline import ImagePipelineWorkflow

USER_PATTERN = re.compile(r"^[A-Za-z0-9._@:-]{1,120}$")
BAD_USER = "the X-Studio-User header must name the user: 1-120 letters, digits or ._@:-"
RUN_ID = r"^[A-Za-z0-9._:-]{1,200}$"
RECORDED_STATUS = {"cancelled": "canceled"}
"""The record's words as Temporal's (what the API says while the run is still there)."""
OPERATION = "ImageOperation"
PIPELINE = "ImagePipeline"


@dataclass
class ApiContext:
    """Built once at start-up (``create_app``'s lifespan) and shared by every request."""

    settings: StudioSettings
    studio: Studio
    submissions: SubmissionBook
    webhook_secret: str | None


def context(request: Request) -> ApiContext:
    """The app's shared context (a FastAPI dependency)."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


Context = Annotated[ApiContext, Depends(context)]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="One of the API keys configured with STUDIO_API_KEYS / STUDIO_API_TOKEN.",
)
USER_HEADER = APIKeyHeader(
    name="X-Studio-User",
    auto_error=False,
    scheme_name="StudioUser",
    description="The end user, asserted by the calling backend (letters, digits, ._@:-).",
)


def key_name(settings: StudioSettings, presented: str) -> str | None:
    """The name of the configured key ``presented`` matches (constant time per key), else None."""
    found = None
    for name, key in settings.bearer_keys().items():
        if hmac.compare_digest(presented.encode(), key.encode()):
            found = name
    return found


def caller(
    ctx: Context,
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    x_studio_user: Annotated[str | None, Security(USER_HEADER)] = None,
) -> str:
    """The user a request acts for; 401 without a configured key or a valid user header."""
    if ctx.settings.bearer_keys():
        name = key_name(ctx.settings, bearer.credentials if bearer else "")
        if name is None:
            raise HTTPException(401, "missing or wrong bearer token")
        request.state.api_key_name = name
    if not x_studio_user or not USER_PATTERN.fullmatch(x_studio_user):
        raise HTTPException(401, BAD_USER)
    return x_studio_user


User = Annotated[str, Depends(caller)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_KEY_CHARS,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Same key, same run.",
    ),
]
RunId = Annotated[str, Path(pattern=RUN_ID)]
MAX_WAIT_SECONDS = 60
Prefer = Annotated[
    str | None,
    Header(
        max_length=200,
        description="`wait=N` (seconds, at most 60): answer 200 with the finished run if it "
        "ends in time, else 202 as usual (RFC 7240).",
    ),
]


def wait_seconds(prefer: str | None) -> int:
    """The ``wait=N`` of a ``Prefer`` header, capped at ``MAX_WAIT_SECONDS``; 0 when absent."""
    match = re.search(r"(?:^|[,;\s])wait=(\d{1,6})", prefer or "")
    return min(int(match.group(1)), MAX_WAIT_SECONDS) if match else 0


async def finished_within(handle: WorkflowHandle[Any, Any], seconds: int) -> bool:
    """Whether the run ends within ``seconds`` (its failure counts as ending). A run refused by
    a plan limit raises ``QuotaExceededError``: the synchronous answer is then a 429."""
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(handle.result(), seconds)
    except TimeoutError:
        return False
    except WorkflowFailureError as exc:
        error = failure_from_workflow(exc, handle.id)
        if isinstance(error, QuotaExceededError):
            raise error from None
        return True
    return True


async def started(run_id: str, kind: str, ctx: ApiContext, *, key: str | None) -> Started:
    """The 202 answer to a start: where to read the run's status, events and UI page. A start
    with an idempotency key may have found an earlier run: its recorded status, not "running"."""
    status = "running"
    if key is not None:
        info = await asyncio.to_thread(ctx.studio.records().find, run_id)
        if info is not None and info.ended:
            status = RECORDED_STATUS.get(info.status, info.status)
    return Started(
        id=run_id,
        status=status,
        links=Links(
            status=f"/v1/{kind}/{run_id}",
            events=f"/v1/{kind}/{run_id}/events",
            ui=ui_url(ctx.settings, run_id),
        ),
    )


async def owned_run(
    ctx: ApiContext, run_id: str, user: str, workflow_type: str
) -> WorkflowHandle[Any, Any]:
    """The run's handle if it exists, is of this kind and belongs to ``user``; else 404."""
    handle = ctx.studio.temporal.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise HTTPException(404, "no such run") from None
        raise
    if (
        description.workflow_type != workflow_type
        or description.typed_search_attributes.get(STUDIO_USER) != user
    ):
        raise HTTPException(404, "no such run")
    return handle


async def run_snapshot(
    ctx: ApiContext, run_id: str, user: str, workflow_type: str
) -> tuple[str, Any, Any, ErrorBody | None]:
    """(status, progress, result, error) of one of the user's runs; from its durable record
    once Temporal no longer has it (past the namespace's retention)."""
    try:
        handle = await owned_run(ctx, run_id, user, workflow_type)
    except HTTPException:
        recorded = await asyncio.to_thread(recorded_snapshot, ctx, run_id, user, workflow_type)
        if recorded is None:
            raise
        return recorded
    description = await handle.describe()
    status = (description.status or WorkflowExecutionStatus.RUNNING).name.lower()
    query = (
        ImageOperationWorkflow.progress
        if workflow_type == OPERATION
        else ImagePipelineWorkflow.progress
    )
    progress = None
    try:
        progress = await handle.query(query)
    except Exception:  # noqa: BLE001 - a finished run whose worker is gone cannot answer
        progress = None
    if description.status == WorkflowExecutionStatus.RUNNING:
        return status, progress, None, None
    try:
        return status, progress, await _result(ctx, run_id, workflow_type), None
    except WorkflowFailureError as exc:
        return status, progress, None, error_body(failure_from_workflow(exc, run_id))


async def _result(
    ctx: ApiContext, run_id: str, workflow_type: str
) -> OperationResult | PipelineResult:
    """The finished run's result, decoded into its model."""
    temporal = ctx.studio.temporal
    # Annotated: mypy cannot infer the SDK's union of method protocols without a target type.
    if workflow_type == OPERATION:
        operation: WorkflowHandle[Any, OperationResult] = temporal.get_workflow_handle_for(
            ImageOperationWorkflow.run, run_id
        )
        return await operation.result()
    pipeline: WorkflowHandle[Any, PipelineResult] = temporal.get_workflow_handle_for(
        ImagePipelineWorkflow.run, run_id
    )
    return await pipeline.result()


def owned_record(ctx: ApiContext, run_id: str, user: str, workflow_type: str) -> RunInfo | None:
    """The durable record of one of ``user``'s runs of this kind, or None (never another's)."""
    kind = "operation" if workflow_type == OPERATION else "pipeline"
    info = ctx.studio.records().find(run_id)
    if info is None or info.user_id != user or info.kind != kind:
        return None
    return info


def recorded_outcome(info: RunInfo) -> OperationResult | PipelineResult | Exception | None:
    """How a recorded run ended: its result, its error, or None while it has not ended."""
    if info.status == "completed" and info.result is not None:
        model = OperationResult if info.kind == "operation" else PipelineResult
        return model.model_validate(info.result)
    if info.ended:
        return failure_from_record(info.error, info.id)
    return None


def recorded_snapshot(
    ctx: ApiContext, run_id: str, user: str, workflow_type: str
) -> tuple[str, Any, Any, ErrorBody | None] | None:
    """The snapshot of one of the user's runs from the ledger's run record, or None."""
    info = owned_record(ctx, run_id, user, workflow_type)
    if info is None:
        return None
    status = RECORDED_STATUS.get(info.status, info.status)
    outcome = recorded_outcome(info)
    if isinstance(outcome, Exception):
        return status, None, None, error_body(outcome)
    return status, None, outcome, None
