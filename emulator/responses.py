"""Response helpers shared by the routes: WaveSpeed's envelope and request-level faults.

Every JSON answer of the real API is ``{"code", "message", "data"}`` with ``code`` mirroring the
HTTP status, so errors are built in one place. Request faults (``http_error``, ``reset``,
``slow``, ``lost_response``) are applied here the same way on every route.
"""

from __future__ import annotations

import asyncio
import math
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.breaks import LostResponse, ResetResponse
from emulator.faults import FaultRule
from emulator.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    runtime.ensure_running()
    return runtime


def ok(data: Any) -> JSONResponse:
    return JSONResponse({"code": 200, "message": "success", "data": data})


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


def retry_after_value(seconds: float) -> str:
    """``Retry-After`` in whole seconds (what HTTP allows), rounded up."""
    return str(max(0, math.ceil(seconds)))


def base_url(request: Request) -> str:
    """Where this emulator is reachable for the client: configured, else the request's base."""
    configured = request.app.state.runtime.state.config.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def request_fault(
    request: Request, route: str, *, model: str | None = None, prompt: str | None = None
) -> tuple[Response | None, FaultRule | None]:
    """Consume the first matching request fault.

    Returns a response to send instead of handling the request (``http_error``, ``reset``), and
    the rule itself so the handler can break its own answer later (``lost_response``).
    """
    rule = request.app.state.runtime.state.faults.take_request_fault(route, model, prompt)
    if rule is None:
        return None, None
    if rule.kind != "lost_response" and rule.delay:
        await asyncio.sleep(rule.delay)
    if rule.kind == "reset":
        return ResetResponse(), rule
    if rule.kind == "http_error":
        headers = (
            {"Retry-After": retry_after_value(rule.retry_after)}
            if rule.retry_after is not None
            else None
        )
        try:
            phrase = HTTPStatus(rule.status).phrase
        except ValueError:
            phrase = "Error"
        return error(rule.status, rule.message or phrase, headers), rule
    return None, rule


def finish(response: Response, rule: FaultRule | None) -> Response:
    """The handler's answer, broken mid-body when a ``lost_response`` rule was taken."""
    if rule is not None and rule.kind == "lost_response":
        return LostResponse(response, rule.delay)
    return response
