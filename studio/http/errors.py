"""Every error answer has one shape (``ErrorBody``): a kind, a message, and the fields at fault."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from contracts.errors import (
    InvalidRequestError,
    OperationFailedError,
    QuotaExceededError,
    StudioError,
)
from studio.http.schemas import ErrorBody, FieldProblem

HTTP_KINDS = {401: "Unauthorized", 404: "NotFound", 422: "InvalidRequest", 503: "Unavailable"}


def error_body(exc: Exception) -> ErrorBody:
    """The answer body for one of our errors."""
    if isinstance(exc, InvalidRequestError):
        return ErrorBody(
            error="InvalidRequest",
            message=str(exc),
            errors=[
                FieldProblem(field=e.field, message=e.message, allowed=e.allowed)
                for e in exc.errors
            ],
        )
    if isinstance(exc, QuotaExceededError):
        return ErrorBody(
            error="QuotaExceeded",
            message=str(exc),
            provider=exc.detail.get("provider"),
            usage_info=exc.detail.get("usage_info"),
        )
    if isinstance(exc, OperationFailedError):
        return ErrorBody(error=exc.failure_type or "OperationFailed", message=str(exc))
    if isinstance(exc, StudioError):
        return ErrorBody(error=exc.error_type, message=str(exc))
    return ErrorBody(error=type(exc).__name__, message=str(exc))


def retry_after(exc: QuotaExceededError, now: datetime | None = None) -> int:
    """Seconds until the refused limit resets: the start of the next billing period.

    (Held reservations that are released can make room sooner; the header is the honest upper
    bound, so a client that waits for it will not be refused for the same limit again.)
    """
    period = str((exc.detail.get("usage_info") or {}).get("period") or "")
    now = now or datetime.now(UTC)
    parts = [int(p) for p in period.split("-") if p.isdigit()]
    if len(parts) < 2:
        return 60
    year, month, day = parts[0], parts[1], parts[2] if len(parts) > 2 else 1
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    reset = datetime(year, month, day, tzinfo=UTC)
    return max(1, math.ceil((reset - now).total_seconds()))


def install_error_handlers(app: FastAPI) -> None:
    """422 for invalid input, 429 for quota, 409 for other refusals, and HTTP errors as bodies."""

    @app.exception_handler(InvalidRequestError)
    async def invalid(_: Request, exc: InvalidRequestError) -> JSONResponse:
        return JSONResponse(error_body(exc).model_dump(), status_code=422)

    @app.exception_handler(QuotaExceededError)
    async def quota(_: Request, exc: QuotaExceededError) -> JSONResponse:
        headers = {"Retry-After": str(retry_after(exc))}
        return JSONResponse(error_body(exc).model_dump(), status_code=429, headers=headers)

    @app.exception_handler(StudioError)
    async def studio_error(_: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse(error_body(exc).model_dump(), status_code=409)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = HTTP_KINDS.get(exc.status_code, "Error")
        return JSONResponse(
            ErrorBody(error=kind, message=str(exc.detail)).model_dump(), status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(field=".".join(str(p) for p in e["loc"] if p != "body"), message=e["msg"])
            for e in exc.errors()
        ]
        return JSONResponse(
            ErrorBody(
                error="InvalidRequest",
                message="the request does not match the API",
                errors=problems,
            ).model_dump(),
            status_code=422,
        )
