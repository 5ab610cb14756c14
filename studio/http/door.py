"""The door: what every request must pass before a byte of its body is read.

A 300 MB body without a token used to be parsed in full before the 401 (seconds, and the API's
memory grew by the body). Here, as plain ASGI in front of FastAPI: one ``X-Studio-User`` header at
most; a request with a body is authenticated from its headers first; a declared
``Content-Length`` over the limit is a 413 at once, and a streamed body is counted as it arrives
and cut off with a 413 the moment it passes the limit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import StudioSettings
from studio.http.context import BAD_USER, USER_PATTERN, key_name

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
SIGNED_ELSEWHERE = ("/webhooks/",)
"""Paths that authenticate by a signature over the body (WaveSpeed's webhooks), not by headers."""
WEBHOOK_BODY_LIMIT = 1024 * 1024
"""A provider's webhook is one prediction's JSON; nothing legitimate comes near this."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Refusal:
    """An answer given at the door."""

    status: int
    error: str
    message: str


class RequestDoor:
    """ASGI middleware: refuse duplicate identities, unauthenticated bodies and oversized bodies
    before the application (and its body parsing) sees the request."""

    def __init__(self, app: ASGIApp, settings: StudioSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal, limit = self._inspect(scope)
        if refusal is not None:
            await answer(send, refusal, receive if _sends_body(scope) else None)
            return
        await _CountedBody(self.app, limit).run(scope, receive, send)

    def _inspect(self, scope: Scope) -> tuple[Refusal | None, int]:
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        users = [v for k, v in headers if k == b"x-studio-user"]
        if len(users) > 1:
            return Refusal(400, "InvalidRequest", "send one X-Studio-User header, not several"), 0
        path: str = scope.get("path", "")
        signed = path.startswith(SIGNED_ELSEWHERE)
        limit = WEBHOOK_BODY_LIMIT if signed else self.settings.request_body_limit
        if scope.get("method") not in WITH_BODY:
            return None, limit
        if not signed:
            problem = self._unauthenticated(headers, users)
            if problem is not None:
                return Refusal(401, "Unauthorized", problem), limit
        lengths = [v for k, v in headers if k == b"content-length"]
        if lengths:
            declared = lengths[0].decode("latin-1").strip()
            if len(lengths) > 1 or not declared.isdigit():
                return Refusal(400, "InvalidRequest", "one numeric Content-Length, please"), limit
            if int(declared) > limit:
                return _too_large(limit), limit
        return None, limit

    def _unauthenticated(
        self, headers: list[tuple[bytes, bytes]], users: list[bytes]
    ) -> str | None:
        """Why the request is not authenticated (the same rules as ``context.caller``), or None."""
        if self.settings.bearer_keys():
            presented = next((v for k, v in headers if k == b"authorization"), b"")
            scheme, _, token = presented.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or key_name(self.settings, token.strip()) is None:
                return "missing or wrong bearer token"
        user = users[0].decode("latin-1") if users else ""
        if not USER_PATTERN.fullmatch(user):
            return BAD_USER
        return None


def _sends_body(scope: Scope) -> bool:
    """Whether the client is about to send a body (and is not waiting for a 100 Continue)."""
    headers = dict(scope.get("headers") or [])
    if headers.get(b"expect", b"").lower() == b"100-continue":
        return False
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or (length.isdigit() and int(length) > 0)


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413,
        "PayloadTooLarge",
        f"the request body is larger than {limit} bytes (STUDIO_MAX_REQUEST_BYTES); "
        "upload big files with POST /v1/uploads or pass an https URL",
    )


async def answer(send: Send, refusal: Refusal, linger: Receive | None = None) -> None:
    """Send ``refusal`` as the usual error body, closing the connection (the body is unread).

    With ``linger``, what the client is still sending is read and dropped for a moment before
    the close: closing on unread data resets the connection, which can destroy the answer on its
    way to a client that is still writing (nginx's lingering close does the same).
    """
    body = json.dumps({"error": refusal.error, "message": refusal.message, "errors": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": linger is not None})
    if linger is not None:
        await _drop_the_rest(linger)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drop_the_rest(receive: Receive) -> None:
    """Read and discard the body for at most ``LINGER_SECONDS`` / ``LINGER_BYTES``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    dropped = 0
    while dropped < LINGER_BYTES and loop.time() < deadline:
        try:
            message = await asyncio.wait_for(receive(), deadline - loop.time())
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        dropped += len(message.get("body", b""))


class _CountedBody:
    """One request: its body counted as the app reads it; past the limit the app sees the client
    go away and the caller gets the 413 (whatever the app does next is dropped)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.refused = False
        self.started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.refused = True
                    if not self.started:
                        self.started = True
                        await answer(send, _too_large(self.limit), receive)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.refused:
                return  # the 413 was the answer
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not self.refused:
                raise  # a real failure; a cut-off body's ClientDisconnect is expected
