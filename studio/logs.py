"""Logs a machine can read: with ``STUDIO_LOG_FORMAT=json`` every event is one JSON object on one
line, carrying the workflow id, run id, operation id, user and trace id of the work it is about.

Workflow and activity loggers already attach their run (``temporal_workflow`` /
``temporal_activity`` extras); ``LogContextInterceptor`` adds the user and operation of each
activity from its input; the trace id is the current OpenTelemetry span's. Secrets never reach a
log line: messages are ours, and inputs are not logged.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from config.settings import StudioSettings

LOG_CONTEXT: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "studio_log_context", default=()
)
"""``operation_id`` and ``user`` of the activity running in this context."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and what the record is about."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(_temporal_fields(record))
        event.update(dict(LOG_CONTEXT.get()))
        if "workflow_id" in event:
            event.setdefault("operation_id", event["workflow_id"])
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            event["trace_id"] = format(span.trace_id, "032x")
            event["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            event["error"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def _temporal_fields(record: logging.LogRecord) -> dict[str, Any]:
    act = getattr(record, "temporal_activity", None)
    if isinstance(act, dict):
        return {
            "workflow_id": act.get("workflow_id"),
            "run_id": act.get("workflow_run_id"),
            "activity": act.get("activity_type"),
            "attempt": act.get("attempt"),
        }
    wf = getattr(record, "temporal_workflow", None)
    if isinstance(wf, dict):
        return {
            "workflow_id": wf.get("workflow_id"),
            "run_id": wf.get("run_id"),
            "workflow_type": wf.get("workflow_type"),
        }
    return {}


def configure_logging(settings: StudioSettings, *, level: int = logging.INFO) -> None:
    """Root logging for a worker or API process, as ``STUDIO_LOG_FORMAT`` says."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
        # The run is in the fields; don't repeat it inside the message.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class LogContextInterceptor(Interceptor):
    """Puts each activity's user and operation id where ``JsonFormatter`` finds them."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap each activity so its log lines know whose work they are about."""
        return _ActivityContext(next)


class _ActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        token = LOG_CONTEXT.set(tuple(_who(input.args).items()))
        try:
            return await super().execute_activity(input)
        finally:
            LOG_CONTEXT.reset(token)


def _who(args: Any) -> dict[str, str]:
    """``user`` and ``operation_id`` from an activity's first argument (or its ``request``)."""
    found: dict[str, str] = {}
    for arg in list(args)[:1]:
        for source in (arg, getattr(arg, "request", None)):
            for attr, key in (("user_id", "user"), ("operation_id", "operation_id")):
                value = getattr(source, attr, None)
                if isinstance(value, str) and key not in found:
                    found[key] = value
    return found
