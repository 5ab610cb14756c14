"""Stability AI's v2beta Stable Image API, emulated under ``/stability`` in the same process.

What the Stability client (and Stability's own samples) send: multipart POSTs (an empty ``none``
part on text-only calls), ``accept: image/*`` or ``application/json``, and the async
``GET /v2beta/results/{id}``. Answers: raw image bytes with ``finish-reason``/``seed`` headers, or
``{"image", "finish_reason", "seed"}``; errors as ``{"id", "name", "errors"}``. Faults come from the
emulator's shared fault book (routes ``stability``, ``stability_result``, ``stability_balance``):
``http_error`` answers before the request is accepted (nothing billed), ``reset``/``slow``/
``lost_response`` happen after it ran (billed, answer lost or late). Real image outputs. What each
endpoint (generate, upscale, edit, control) requires and renders: ``emulator.stability_endpoints``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.paid import broken
from emulator.stability_endpoints import ASYNC_PATHS, CREDITS, problem, render

PREFIX = "/stability"
ERROR_NAMES = {
    400: ("bad_request", "some-field: is required"),
    402: ("payment_required", "lacking credits"),
    403: (
        "content_moderation",
        "Your request was flagged by our content moderation system, as a result your request "
        "was denied and you were not charged.",
    ),
    404: ("generation_not_found", "id: the generation either does not exist or has expired."),
    413: ("payload_too_large", "body: payloads cannot be larger than 10MiB in size"),
    422: ("invalid_language", "English is the only supported language for this service."),
    429: (
        "rate_limit_exceeded",
        "You have exceeded the rate limit of 150 requests within a 10 second period, and have "
        "been timed out for 60 seconds.",
    ),
    500: ("internal_error", "An unexpected server error has occurred, please try again later."),
}


@dataclass
class Job:
    """An async generation: its image, and when it is done."""

    key: str
    path: str
    image: bytes
    media_type: str
    done_at: float
    seed: int


class StabilityAccount:
    """The emulated Stability account: credits, async jobs and counters (thread-safe)."""

    def __init__(self, credits: Decimal = Decimal(1000), processing_seconds: float = 0.2) -> None:
        self._lock = threading.Lock()
        self.start_credits = credits
        self.processing_seconds = processing_seconds
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.credits = self.start_credits
            self.jobs: dict[str, Job] = {}
            self.posts: Counter[str] = Counter()
            """Paid POSTs that reached the emulator, per path (accepted or refused)."""
            self.billed: Counter[str] = Counter()
            """POSTs that ran and were debited, per path (a lost answer still counts here)."""
            self.result_gets = 0
            self.seen: list[dict[str, Any]] = []
            """The last paid requests as sent: path, text fields and the names of file parts."""

    def count_post(self, path: str) -> None:
        with self._lock:
            self.posts[path] += 1

    def record(self, path: str, fields: dict[str, Any], files: list[str]) -> None:
        """Keep what the client sent (the last 50 requests), so tests can check the fields."""
        entry = {"path": path, "fields": dict(fields), "files": sorted(files)}
        with self._lock:
            self.seen = [*self.seen[-49:], entry]

    def bill(self, path: str) -> None:
        with self._lock:
            self.billed[path] += 1
            self.credits -= CREDITS.get(path, Decimal(0))

    def add_job(self, job: Job) -> str:
        job_id = secrets.token_hex(32)
        with self._lock:
            self.jobs[job_id] = job
        return job_id

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            self.result_gets += 1
            return self.jobs.get(job_id)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "posts": dict(self.posts),
                "billed": dict(self.billed),
                "result_gets": self.result_gets,
                "credits": float(self.credits),
            }


router = APIRouter(prefix=PREFIX)


def account_of(request: Request) -> StabilityAccount:
    account: StabilityAccount = request.app.state.stability
    return account


def stability_error(
    status: int, message: str | None = None, retry_after: float | None = None
) -> Response:
    name, default = ERROR_NAMES.get(status, ("internal_error", ERROR_NAMES[500][1]))
    headers = {"retry-after": str(int(retry_after))} if retry_after is not None else None
    body = {"id": secrets.token_hex(16), "name": name, "errors": [message or default]}
    return JSONResponse(body, status_code=status, headers=headers)


@router.post("/v2beta/{path:path}")
async def paid_call(path: str, request: Request) -> Response:
    account = account_of(request)
    account.count_post(path)
    form = await request.form()  # the whole request is read before any fault applies
    fields = {k: v for k, v in form.items() if not isinstance(v, UploadFile)}
    images = {
        k: await v.read() for k, v in form.items() if isinstance(v, UploadFile) and k != "none"
    }
    account.record(path, fields, list(images))
    rule = request.app.state.runtime.state.faults.take_request_fault(
        "stability", path, str(fields.get("prompt", ""))
    )
    if rule is not None and rule.kind == "http_error":
        await asyncio.sleep(rule.delay)
        return stability_error(rule.status, rule.message, rule.retry_after)  # not accepted
    if path not in CREDITS:
        return stability_error(404, f"{path}: no such endpoint")
    refused = problem(path, fields, images)
    if refused:
        return stability_error(400, refused)
    image, media_type, seed = render(path, fields, images)
    account.bill(path)
    if path in ASYNC_PATHS:
        done = time.monotonic() + account.processing_seconds
        job_id = account.add_job(Job(_key(request), path, image, media_type, done, seed))
        answer: Response = JSONResponse({"id": job_id})
    else:
        answer = _image_answer(request, image, media_type, seed)
    return await broken(answer, rule)


@router.get("/v2beta/results/{job_id}")
async def result(job_id: str, request: Request) -> Response:
    rule = request.app.state.runtime.state.faults.take_request_fault("stability_result", None, None)
    if rule is not None and rule.kind == "http_error":
        return stability_error(rule.status, rule.message, rule.retry_after)
    job = account_of(request).job(job_id)
    if job is None or job.key != _key(request):
        return stability_error(404)
    if time.monotonic() < job.done_at:
        return JSONResponse({"id": job_id, "status": "in-progress"}, status_code=202)
    return await broken(_image_answer(request, job.image, job.media_type, job.seed), rule)


@router.get("/v1/user/balance")
async def balance(request: Request) -> Response:
    rule = request.app.state.runtime.state.faults.take_request_fault(
        "stability_balance", None, None
    )
    if rule is not None and rule.kind == "http_error":
        return stability_error(rule.status, rule.message, rule.retry_after)
    return JSONResponse({"credits": float(account_of(request).credits)})


def _image_answer(request: Request, image: bytes, media_type: str, seed: int) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        body = {"image": base64.b64encode(image).decode(), "finish_reason": "SUCCESS", "seed": seed}
        return JSONResponse(body, media_type=f"application/json; type={media_type}")
    headers = {"finish-reason": "SUCCESS", "seed": str(seed)}
    return Response(image, media_type=media_type, headers=headers)


def _key(request: Request) -> str:
    return hashlib.sha256(request.headers.get("authorization", "").encode()).hexdigest()
