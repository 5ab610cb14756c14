"""What the synchronous providers' emulators share: an account that counts paid calls, and how
a call that ran has its answer delayed or lost (``slow``, ``reset``, ``lost_response`` faults).

Why counters on both sides of the fault: ``posts`` is every paid request that reached the
emulator, ``billed`` only those that ran, so a test can prove that a refusal billed nothing and
that a lost answer was still billed (possible provider cost, never repeated).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from emulator.breaks import LostResponse, ResetResponse
from emulator.faults import FaultRule


class InlineAccount:
    """One emulated provider account: paid requests received and billed, per model (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.posts: Counter[str] = Counter()
            """Paid POSTs that reached the emulator with a valid key, per model."""
            self.billed: Counter[str] = Counter()
            """POSTs that ran and were billed, per model (a lost answer still counts here)."""
            self.seen: list[dict[str, Any]] = []
            """The last paid requests as sent (path, content type, accept, JSON body), so tests
            can check the wire shape the official SDK produced; never the key."""

    def count_post(self, model: str) -> None:
        with self._lock:
            self.posts[model] += 1

    def record(self, path: str, headers: Mapping[str, str], body: Any) -> None:
        """Keep what an SDK sent (the last 50 requests), without its credentials."""
        entry = {
            "path": path,
            "content_type": headers.get("content-type", ""),
            "accept": headers.get("accept", ""),
            "body": body,
        }
        with self._lock:
            self.seen = [*self.seen[-49:], entry]

    def bill(self, model: str) -> None:
        with self._lock:
            self.billed[model] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"posts": dict(self.posts), "billed": dict(self.billed)}


async def broken(answer: Response, rule: FaultRule | None) -> Response:
    """The answer of a call that ran, delayed or lost as the fault says."""
    if rule is None:
        return answer
    if rule.kind == "slow":
        await asyncio.sleep(rule.delay)
        return answer
    if rule.kind == "reset":
        return ResetResponse()
    if rule.kind == "lost_response":
        return LostResponse(answer, rule.delay)
    return answer
