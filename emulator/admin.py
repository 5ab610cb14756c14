"""``/_emulator`` admin routes (no auth): faults, counters, recorded predictions, reset, config.

These exist for tests and tools that drive the emulator over HTTP (another process, a shell);
in-process tests can use the same operations directly on ``EmulatorServer``.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from emulator.faults import as_rules
from emulator.responses import runtime_of

router = APIRouter(prefix="/_emulator")


def _bad(message: Any) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else None


@router.post("/faults")
async def add_faults(request: Request) -> Response:
    """Add one rule or a list (``{"replace": true, "rules": [...]}`` replaces all)."""
    state = runtime_of(request).state
    try:
        body = await _json(request)
        replace = isinstance(body, dict) and "rules" in body and bool(body.get("replace"))
        rules = as_rules(body["rules"] if isinstance(body, dict) and "rules" in body else body)
    except json.JSONDecodeError as exc:
        return _bad(f"invalid JSON: {exc}")
    except (ValidationError, TypeError) as exc:
        return _bad(json.loads(exc.json()) if isinstance(exc, ValidationError) else str(exc))
    (state.faults.replace if replace else state.faults.add)(rules)
    return JSONResponse({"faults": state.faults.describe()})


@router.get("/faults")
async def list_faults(request: Request) -> Response:
    return JSONResponse({"faults": runtime_of(request).state.faults.describe()})


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    runtime_of(request).state.faults.clear()
    return JSONResponse({"faults": []})


@router.get("/stats")
async def stats(request: Request) -> Response:
    return JSONResponse(runtime_of(request).state.stats_view())


@router.get("/predictions")
async def predictions(request: Request) -> Response:
    state = runtime_of(request).state
    return JSONResponse([state.admin_view(r) for r in state.records()])


@router.post("/reset")
async def reset(request: Request) -> Response:
    """Everything back to the start, the other providers' accounts too (as ``EmulatorServer``)."""
    runtime_of(request).state.reset()
    for account in ("stability", "huggingface", "gemini"):
        getattr(request.app.state, account).reset()
    return JSONResponse({"reset": True})


@router.get("/config")
async def get_config(request: Request) -> Response:
    config = runtime_of(request).state.config
    return JSONResponse(config.model_dump(mode="json", exclude={"api_key", "webhook_secret"}))


@router.post("/config")
async def set_config(request: Request) -> Response:
    state = runtime_of(request).state
    try:
        changes = await _json(request) or {}
        if not isinstance(changes, dict):
            return _bad("body must be a JSON object of settings")
        config = state.configure(changes)
    except json.JSONDecodeError as exc:
        return _bad(f"invalid JSON: {exc}")
    except ValidationError as exc:
        return _bad(json.loads(exc.json()))
    except ValueError as exc:
        return _bad(str(exc))
    return JSONResponse(config.model_dump(mode="json", exclude={"api_key", "webhook_secret"}))
