"""Broken connections on purpose: ``reset`` and ``lost_response`` faults.

A client must see these as transport failures, not HTTP statuses, so they cannot be ordinary
responses. ``EmulatorApp`` stores the server's raw ASGI ``send`` in the scope; under uvicorn it
is a bound method of the connection's request cycle, whose ``transport`` we close directly:

* ``reset``: nothing is written; the socket is closed with SO_LINGER 0, i.e. a TCP RST.
* ``lost_response``: the status line, headers and half of the body go out, then the socket is
  closed, so the client gets "peer closed connection without sending complete message body".

Under another server (no transport reachable) both raise inside the response instead, which
still breaks the exchange, only less cleanly.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

RAW_SEND_KEY = "emulator.raw_send"


def _cycle(scope: Scope) -> Any:
    return getattr(scope.get(RAW_SEND_KEY), "__self__", None)


def _transport(scope: Scope) -> asyncio.Transport | None:
    transport = getattr(_cycle(scope), "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def _settle(scope: Scope) -> None:
    """Let the server notice the closed connection, so it neither logs nor writes a 500."""
    cycle = _cycle(scope)
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0.001)


class ResetResponse(Response):
    """Abort the connection before any byte of a response is sent."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = _transport(scope)
        if transport is None:
            raise ConnectionResetError("emulated connection reset")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
        await _settle(scope)


class LostResponse(Response):
    """Start a real response, then drop the connection halfway through its body."""

    def __init__(self, original: Response, delay: float = 0.0) -> None:
        super().__init__(bytes(original.body), status_code=original.status_code)
        self.raw_headers = list(original.raw_headers)
        self.delay = delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )
        transport = _transport(scope)
        if transport is None:
            raise ConnectionAbortedError("emulated lost response")
        await asyncio.sleep(0)  # let the partial body reach the socket
        transport.close()
        await _settle(scope)
