"""Application metrics of a worker (Prometheus, via prometheus_client).

Recorded in activities, never in workflow code: workflows replay, and a counter moved during a
replay would count the same operation twice. Labels are bounded sets (operation, catalogue model,
status, provider error code); never a user, a prompt or an id. The worker's ``/metrics`` endpoint
serves these next to the Temporal SDK's own metrics (see ``studio.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import Counter, Histogram

OPERATIONS_STARTED = Counter(
    "studio_operations_started",
    "Operations that passed pre-flight and hold a reservation.",
    ["operation", "model"],
)
OPERATIONS_FINISHED = Counter(
    "studio_operations_finished",
    "Operations that ended: succeeded, partial (some variations failed), failed, cancelled.",
    ["operation", "model", "status"],
)
CHARGED_USD = Counter(
    "studio_charged_usd", "US dollars charged to users at settlement.", ["operation", "model"]
)
PROVIDER_ERRORS = Counter(
    "studio_provider_errors",
    "Provider errors by call (submit, poll, download, upload, prediction) and code.",
    ["call", "code"],
)
COMPLETIONS = Counter(
    "studio_prediction_completions",
    "Predictions seen in a final state, by what made the engine look: a webhook or polling.",
    ["via", "status"],
)
RESERVATIONS_REFUSED = Counter(
    "studio_reservations_refused",
    "Pre-flight refusals: plan units, monthly cost cap or pipeline budget.",
    ["limit", "category"],
)
OPERATION_SECONDS = Histogram(
    "studio_operation_duration_seconds",
    "End to end: workflow start to settlement or release.",
    ["operation", "status"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
)
PROVIDER_SECONDS = Histogram(
    "studio_provider_request_duration_seconds",
    "Latency of calls to the provider (submit POST, poll GET, output download).",
    ["call"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


@contextmanager
def provider_call(call: str) -> Iterator[None]:
    """Time one provider call (recorded whether it succeeds or not)."""
    began = time.perf_counter()
    try:
        yield
    finally:
        PROVIDER_SECONDS.labels(call).observe(time.perf_counter() - began)


def provider_error(call: str, code: object) -> None:
    """Count a provider error: an HTTP status or task error code, else the error's class name."""
    if isinstance(code, BaseException):
        status = getattr(code, "status", None)
        code = status if status else type(code).__name__
    PROVIDER_ERRORS.labels(call, str(code) if code is not None else "unknown").inc()


def operation_finished(
    operation: str, model: str, status: str, started_at: datetime | None, charged: Decimal
) -> None:
    OPERATIONS_FINISHED.labels(operation, model, status).inc()
    if charged:
        CHARGED_USD.labels(operation, model).inc(float(charged))
    if started_at is not None:
        elapsed = (datetime.now(UTC) - started_at).total_seconds()
        OPERATION_SECONDS.labels(operation, status).observe(max(0.0, elapsed))


def refused(detail: dict[str, object]) -> None:
    info = detail.get("usage_info")
    info = info if isinstance(info, dict) else {}
    RESERVATIONS_REFUSED.labels(
        str(info.get("limit_type", "budget")), str(info.get("category", "pipeline"))
    ).inc()
