"""File routes: the "CDN" for outputs and uploads, and the storage PUT target of direct uploads.

None of these take the API key: WaveSpeed's output URLs are public CDN links and the upload PUT
goes to storage with only the headers the ticket named.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from emulator.responses import error, finish, ok, request_fault, runtime_of

router = APIRouter()


@router.api_route("/outputs/{prediction_id}/{name}", methods=["GET", "HEAD"])
async def output_file(prediction_id: str, name: str, request: Request) -> Response:
    runtime = runtime_of(request)
    state = runtime.state
    record = state.get(prediction_id)
    prompt = record.input.get("prompt") if record else None
    early, rule = await request_fault(
        request,
        "output",
        model=record.model if record else None,
        prompt=prompt if isinstance(prompt, str) else None,
    )
    if early:
        return early
    index, _, ext = name.partition(".")
    if (
        record is None
        or not state.outputs_available(record)
        or record.plan.kind == "text"
        and ext != "txt"
        or ext != record.plan.ext
        or not index.isdigit()
        or int(index) >= record.plan.count
    ):
        return finish(error(404, "not found"), rule)
    files = await runtime.outputs(record)
    return finish(Response(files[int(index)], media_type=record.plan.media_type), rule)


@router.api_route("/media/{upload_id}/{filename}", methods=["GET", "HEAD"])
async def uploaded_file(upload_id: str, filename: str, request: Request) -> Response:
    state = runtime_of(request).state
    early, rule = await request_fault(request, "output")
    if early:
        return early
    upload = state.get_upload(upload_id)
    if upload is None or upload.data is None or upload.filename != filename:
        return finish(error(404, "not found"), rule)
    return finish(Response(upload.data, media_type=upload.media_type), rule)


@router.put("/storage/uploads/{upload_id}")
async def storage_put(upload_id: str, request: Request) -> Response:
    state = runtime_of(request).state
    early, rule = await request_fault(request, "upload")
    if early:
        return early
    if state.get_upload(upload_id) is None:
        return finish(error(404, "upload ticket not found"), rule)
    data = await request.body()
    if len(data) > state.config.max_upload_bytes:
        return finish(
            error(413, f"file too large: the limit is {state.config.max_upload_bytes} bytes"), rule
        )
    state.put_upload(upload_id, data)
    return finish(ok({"size": len(data)}), rule)
