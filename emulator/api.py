"""The ``/api/v3`` routes: submit, poll, history, delete, uploads, account and model list.

Shapes follow §1 of the WaveSpeed notes; where the real service is undocumented the emulator
takes the documented envelope and a plausible message. The submit path is a catch-all
(``POST /api/v3/{owner}/{model...}``) registered last, so the reserved paths above it win.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from contracts.errors import InvalidRequestError
from emulator.media import media_kind, media_type_of, parse_multipart, safe_filename
from emulator.records import TERMINAL, parse_rfc3339_ns
from emulator.render import base_image_field, plan_outputs
from emulator.responses import (
    base_url,
    error,
    finish,
    ok,
    request_fault,
    retry_after_value,
    runtime_of,
)
from emulator.schema import model_entry
from providers.catalogue import ModelSpec

router = APIRouter(prefix="/api/v3")

PLATFORM_FIELDS = ("enable_sync_mode", "enable_base64_output", "webhook_url")
"""Body flags of the platform, not of the model: stripped before validation."""
RESERVED = ("predictions", "media", "balance", "models", "model", "webhook", "account", "upload")
BASE64_WITH_WEBHOOK = "webhook callback does not support base64 output, please use the normal API to use base64 output"
MEDIA_FAILED = "Failed to download image from the provided URL."
SYNC_TIMEOUT = "Sync mode timed out after {seconds:g} seconds. The prediction is still processing asynchronously."


async def _json_object(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _prompt(body: dict[str, Any] | None) -> str | None:
    body = body or {}
    value = body.get("prompt") or body.get("text")
    return value if isinstance(value, str) else None


def _invalid_message(spec: ModelSpec, exc: InvalidRequestError) -> str:
    details = []
    for item in exc.errors:
        name = item.field.removeprefix("inputs.")
        allowed = f" (allowed: {item.allowed})" if item.allowed else ""
        details.append(f"{name}: {item.message}{allowed}")
    return f"invalid input for {spec.path}: " + ("; ".join(details) or exc.summary)


def _spec_for(request: Request, model_id: Any) -> ModelSpec | None:
    catalogue = request.app.state.runtime.catalogue
    if not isinstance(model_id, str):
        return None
    return catalogue.by_path(model_id) or next(
        (m for m in catalogue.models if m.id == model_id), None
    )


# ----------------------------------------------------------------------------- predictions


async def _result(request: Request, prediction_id: str) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    state.count("polls")
    known = state.get(prediction_id)
    early, rule = await request_fault(
        request,
        "result",
        model=known.model if known else None,
        prompt=_prompt(known.input if known else None),
    )
    if early:
        return early
    record = state.get(prediction_id, poll=True)
    if record is None:
        return finish(error(404, f"prediction not found: {prediction_id}"), rule)
    return finish(ok(await runtime.data(record)), rule)


@router.get("/predictions/{prediction_id}/result")
async def get_result(prediction_id: str, request: Request) -> Response:
    return await _result(request, prediction_id)


@router.get("/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, request: Request) -> Response:
    return await _result(request, prediction_id)


@router.delete("/predictions/{prediction_id}")
async def delete_prediction(prediction_id: str, request: Request) -> Response:
    state = runtime_of(request).state
    if state.get(prediction_id) is None:
        return error(404, f"prediction not found: {prediction_id}")
    state.delete([prediction_id])
    return ok({"id": prediction_id, "status": "deleted"})


@router.post("/predictions/delete")
async def delete_predictions(request: Request) -> Response:
    state = runtime_of(request).state
    body = await _json_object(request)
    ids = (body or {}).get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return error(400, "ids: must be a list of prediction ids")
    return ok({"deleted_count": state.delete(ids)})


async def _history(request: Request, body: dict[str, Any]) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    state.count("history_requests")
    early, rule = await request_fault(request, "history", model=body.get("model"))
    if early:
        return early
    page, page_size = body.get("page", 1), body.get("page_size", 20)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        return error(400, "page: must be an integer >= 1")
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 100:
        return error(400, "page_size: must be an integer in [1, 100]")
    filters: dict[str, Any] = {}
    for name in ("model", "status"):
        value = body.get(name)
        if value not in (None, ""):
            if not isinstance(value, str):
                return error(400, f"{name}: must be a string")
            filters[name] = value
    for name in ("created_after", "created_before"):
        value = body.get(name)
        if value not in (None, ""):
            try:
                filters[f"{name}_ns"] = parse_rfc3339_ns(str(value))
            except ValueError:
                return error(400, f"{name}: must be an RFC 3339 timestamp")
    include_inputs = body.get("include_inputs") in (True, "true", "1", 1)
    found = state.history(**filters)
    chosen = found[(page - 1) * page_size : page * page_size]
    items = [state.view(r, include_input=include_inputs) for r in chosen]
    data = {"page": page, "page_size": page_size, "total": len(found), "items": items}
    return finish(ok(data), rule)


@router.post("/predictions")
async def history(request: Request) -> Response:
    body = await _json_object(request)
    if body is None:
        return error(400, "body must be a JSON object")
    return await _history(request, body)


@router.get("/predictions")
async def history_get(request: Request) -> Response:
    query: dict[str, Any] = dict(request.query_params)
    for name in ("page", "page_size"):
        if name in query:
            try:
                query[name] = int(query[name])
            except ValueError:
                return error(400, f"{name}: must be an integer")
    return await _history(request, query)


# ----------------------------------------------------------------------------- uploads


@router.post("/media/upload/binary")
async def upload_binary(request: Request) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    early, rule = await request_fault(request, "upload")
    if early:
        return early
    limit = state.config.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        return finish(error(413, f"file too large: the limit is {limit} bytes"), rule)
    try:
        parts = parse_multipart(await request.body(), request.headers.get("content-type", ""))
    except ValueError as exc:
        return finish(error(400, str(exc)), rule)
    part = parts.get("file")
    if part is None:
        return finish(error(400, "file: missing multipart field 'file'"), rule)
    if len(part.data) > limit:
        return finish(error(413, f"file too large: the limit is {limit} bytes"), rule)
    filename = safe_filename(part.filename)
    media_type = media_type_of(filename, part.content_type, part.data)
    kind = media_kind(media_type)
    if kind is None or media_type is None:
        return finish(
            error(400, "unsupported file type: upload an image, video or audio file"), rule
        )
    upload = state.create_upload(
        filename=filename, media_type=media_type, kind=kind, size=len(part.data), data=part.data
    )
    data = {
        "type": kind,
        "download_url": f"{base_url(request)}/media/{upload.id}/{filename}",
        "filename": filename,
        "size": len(part.data),
    }
    return finish(ok(data), rule)


@router.post("/media/uploads")
async def upload_ticket(request: Request) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    early, rule = await request_fault(request, "upload")
    if early:
        return early
    body = await _json_object(request)
    if body is None:
        return finish(error(400, "body must be a JSON object"), rule)
    filename, size, declared = body.get("filename"), body.get("size"), body.get("content_type")
    if not isinstance(filename, str) or not filename.strip():
        return finish(error(400, "filename: required"), rule)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return finish(error(400, "size: must be a non-negative integer"), rule)
    if size > state.config.max_upload_bytes:
        return finish(
            error(413, f"file too large: the limit is {state.config.max_upload_bytes} bytes"), rule
        )
    name = safe_filename(filename)
    media_type = media_type_of(name, declared if isinstance(declared, str) else None)
    kind = media_kind(media_type)
    if kind is None or media_type is None:
        return finish(
            error(400, "unsupported file type: upload an image, video or audio file"), rule
        )
    upload = state.create_upload(
        filename=name, media_type=media_type, kind=kind, size=size, data=None
    )
    root = base_url(request)
    data = {
        "type": kind,
        "download_url": f"{root}/media/{upload.id}/{name}",
        "filename": name,
        "size": size,
        "upload": {
            "method": "PUT",
            "url": f"{root}/storage/uploads/{upload.id}",
            "headers": {"Content-Type": media_type},
        },
    }
    return finish(ok(data), rule)


# ----------------------------------------------------------------------------- account & models


@router.get("/balance")
async def balance(request: Request) -> Response:
    state = runtime_of(request).state
    state.count("balance_requests")
    early, rule = await request_fault(request, "balance")
    if early:
        return early
    return finish(ok({"balance": float(state.balance)}), rule)


@router.post("/model/pricing")
async def model_pricing(request: Request) -> Response:
    runtime_of(request)
    body = await _json_object(request) or {}
    spec = _spec_for(request, body.get("model_id"))
    if spec is None:
        return error(404, f"model not found: {body.get('model_id')}")
    return ok({"model_id": spec.path, "unit_price": float(spec.price_usd), "currency": "USD"})


@router.post("/model/price")
async def model_price(request: Request) -> Response:
    runtime_of(request)
    body = await _json_object(request) or {}
    spec = _spec_for(request, body.get("model_id"))
    if spec is None:
        return error(404, f"model not found: {body.get('model_id')}")
    price = float(spec.price_usd)
    return ok(
        {
            "model_id": spec.path,
            "price": price,
            "discounted_price": price,
            "discount_rate": 0,
            "currency": "USD",
        }
    )


@router.get("/models")
async def models(request: Request) -> Response:
    catalogue = runtime_of(request).catalogue
    return ok([model_entry(spec, i) for i, spec in enumerate(catalogue.models)])


@router.get("/webhook/secret")
async def webhook_secret(request: Request) -> Response:
    return ok({"secret": runtime_of(request).state.config.webhook_secret})


# ----------------------------------------------------------------------------- submit


@router.post("/{model_path:path}")
async def submit(model_path: str, request: Request) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    state.count("submit_requests")
    model_path = model_path.strip("/")
    if model_path.split("/", 1)[0] in RESERVED:
        return error(404, f"not found: /api/v3/{model_path}")
    body = await _json_object(request)
    early, rule = await request_fault(request, "submit", model=model_path, prompt=_prompt(body))
    if early:
        return early
    return finish(await _create(request, model_path, body), rule)


@router.api_route("/{rest:path}", methods=["GET", "PUT", "PATCH", "DELETE"])
async def unknown_route(rest: str, request: Request) -> Response:
    return error(404, f"not found: /api/v3/{rest}")


async def _create(request: Request, model_path: str, body: dict[str, Any] | None) -> Response:
    """Everything a submit does after faults: look up, validate, charge checks, create, sync wait."""
    runtime = runtime_of(request)
    state = runtime.state
    spec = runtime.catalogue.by_path(model_path)
    if spec is None:
        return error(404, f"model not found: {model_path}")
    if body is None:
        return error(400, "request body must be a JSON object of model inputs")
    webhook_url = request.query_params.get("webhook") or body.get("webhook_url") or None
    base64_output = body.get("enable_base64_output") is True
    sync = body.get("enable_sync_mode") is True
    if webhook_url and base64_output:
        return JSONResponse({"error": BASE64_WITH_WEBHOOK}, status_code=400)
    inputs = {k: v for k, v in body.items() if k not in PLATFORM_FIELDS}
    try:
        spec.validate_inputs(inputs, wire=True)
    except InvalidRequestError as exc:
        return error(400, _invalid_message(spec, exc))
    wait = state.rate_limited()
    if wait is not None:
        return error(
            429,
            "Too many requests: submit rate limit exceeded",
            {"Retry-After": retry_after_value(wait)},
        )
    if not state.can_pay(spec.price_usd):
        config = state.config
        return error(config.insufficient_balance_status, config.insufficient_balance_message)
    outcome, input_image = await _read_inputs(request, spec, inputs)
    if input_image is None:
        plan = plan_outputs(spec, inputs, None)
    else:  # reads the image (size, colours for captions): keep it off the event loop
        plan = await asyncio.to_thread(plan_outputs, spec, inputs, input_image)
    record = state.create_prediction(
        model=spec.path,
        body=body,
        plan=plan,
        price=Decimal(spec.price_usd),
        base_url=base_url(request),
        webhook_url=str(webhook_url) if webhook_url else None,
        base64_output=base64_output,
        outcome=outcome,
        faults=state.faults.take_prediction_faults(spec.path, _prompt(body)),
        api_key=request.headers.get("authorization", "").removeprefix("Bearer ").strip(),
        client={k: v for k, v in request.headers.items() if k.lower().startswith("x-client-")},
    )
    if not sync:
        return ok(await runtime.data(record))
    timeout = state.config.sync_timeout_seconds
    record = await runtime.wait_terminal(record.id, timeout) or record
    data = await runtime.data(record)
    if record.status not in TERMINAL:
        data.update(code=5004, error=SYNC_TIMEOUT.format(seconds=timeout))
    return ok(data)


async def _read_inputs(
    request: Request, spec: ModelSpec, inputs: dict[str, Any]
) -> tuple[tuple[str, int | None, str] | None, bytes | None]:
    """Download every input image like WaveSpeed would; an unreachable one fails the task (1402)."""
    runtime = request.app.state.runtime
    base_field = base_image_field(spec)
    base_image = None
    failed = None
    for field in spec.image_fields():
        value = inputs.get(field.name)
        urls = value if isinstance(value, list) else [value] if value else []
        for position, url in enumerate(urls):
            data = await runtime.fetch_input(str(url), request)
            if data is None:
                failed = ("failed", 1402, MEDIA_FAILED)
            elif field.name == base_field and position == 0:
                base_image = data
    return failed, base_image
