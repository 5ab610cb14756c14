"""The async side of the emulator: its clock, output renders, webhooks and input fetches.

``EmulatorState`` is plain synchronous data; this object lives in the server's event loop and
reacts to it: a clock task applies due status changes even when nobody polls (so webhooks go
out on time), finished predictions get their files rendered once in a worker thread, and
webhook deliveries run as background tasks so they never hold up a poll.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.requests import Request

from emulator.records import TERMINAL, PredictionRecord
from emulator.render import render
from emulator.state import EmulatorState
from emulator.webhooks import WebhookSender
from providers.catalogue import Catalogue

LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
MAX_CLOCK_SLEEP = 0.5


class Runtime:
    """Owns the background work of one emulator app."""

    def __init__(self, state: EmulatorState, catalogue: Catalogue) -> None:
        self.state = state
        self.catalogue = catalogue
        self.webhooks = WebhookSender(state)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._render_locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ lifecycle

    def ensure_running(self) -> None:
        """Start the clock in the current loop (lifespan does it; lazily for lifespan-less hosts)."""
        loop = asyncio.get_running_loop()
        if self._clock_task is not None and not self._clock_task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self.state.remove_listener(self._poke)
        self.state.add_listener(self._poke)
        self._clock_task = loop.create_task(self._clock(), name="emulator-clock")

    async def stop(self) -> None:
        self.state.remove_listener(self._poke)
        tasks = [t for t in (self._clock_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._clock_task = None
        self._tasks.clear()
        await self.webhooks.aclose()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _clock(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            next_at = self.state.advance()
            self._dispatch_finished()
            delay = MAX_CLOCK_SLEEP if next_at is None else max(0.0, next_at - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), min(delay, MAX_CLOCK_SLEEP))
            except TimeoutError:
                pass

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispatch_finished(self) -> None:
        for record in self.state.pop_finished():
            render_now = self.state.config.render_on_complete
            if render_now and record.status == "completed" and record.plan.kind != "text":
                self._spawn(self.outputs(record), f"render-{record.id}")
            if record.webhook_url and record.status in ("completed", "failed"):
                payload = self.state.view(record)
                self._spawn(
                    self.webhooks.deliver(
                        record.id, record.webhook_url, payload, record.webhook_faults
                    ),
                    f"webhook-{record.id}",
                )

    # ------------------------------------------------------------------ predictions

    async def outputs(self, record: PredictionRecord) -> list[bytes]:
        """The prediction's files, rendered once (in a worker thread) and then cached."""
        cached = self.state.cached_outputs(record.id)
        if cached is not None:
            return cached
        lock = self._render_locks.setdefault(record.id, asyncio.Lock())
        async with lock:
            cached = self.state.cached_outputs(record.id)
            if cached is None:
                plan = record.plan
                cached = await asyncio.to_thread(
                    lambda: [render(plan, i) for i in range(plan.count)]
                )
                self.state.store_outputs(record.id, cached)
        self._render_locks.pop(record.id, None)
        return cached

    async def data(self, record: PredictionRecord, *, include_input: bool = True) -> dict[str, Any]:
        """The API view of a prediction, with base64 outputs when the submit asked for them."""
        outputs = None
        if record.base64_output and record.status == "completed" and record.plan.kind != "text":
            outputs = [base64.b64encode(f).decode() for f in await self.outputs(record)]
        return self.state.view(record, outputs=outputs, include_input=include_input)

    async def wait_terminal(self, prediction_id: str, timeout: float) -> PredictionRecord | None:
        """Block (asynchronously) until the prediction ends or ``timeout`` passes (sync mode)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.state.get(prediction_id)
            if record is None or record.status in TERMINAL or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(min(0.01, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------------ input media

    async def fetch_input(self, url: str, request: Request) -> bytes | None:
        """Bytes of an input media URL, or None when WaveSpeed could not download it.

        Only data URIs and this emulator's own uploads and outputs resolve: the emulator never
        goes to the internet, so any other host fails like an unreachable URL (task code 1402).
        """
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            try:
                return (
                    base64.b64decode(payload, validate=False)
                    if ";base64" in header
                    else unquote(payload).encode()
                )
            except (binascii.Error, ValueError):
                return None
        if not self._is_local(url, request):
            return None
        parts = [unquote(p) for p in urlsplit(url).path.split("/") if p]
        if len(parts) == 3 and parts[0] == "media":
            upload = self.state.get_upload(parts[1])
            return upload.data if upload is not None else None
        if len(parts) == 3 and parts[0] == "outputs":
            record = self.state.get(parts[1])
            index = parts[2].split(".", 1)[0]
            if record is None or not self.state.outputs_available(record) or not index.isdigit():
                return None
            files = await self.outputs(record)
            return files[int(index)] if int(index) < len(files) else None
        return None

    def _is_local(self, url: str, request: Request) -> bool:
        target = urlsplit(url)
        if target.scheme not in ("http", "https"):
            return False
        own = {request.url.netloc.lower()}
        if self.state.config.public_url:
            own.add(urlsplit(self.state.config.public_url).netloc.lower())
        if target.netloc.lower() in own:
            return True
        server = request.scope.get("server") or (None, None)
        return (target.hostname or "") in LOOPBACK and target.port == server[1]
