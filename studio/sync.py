"""``StudioSync``: the same client for code that is not async (scripts, Django views, notebooks).

Every ``Studio`` method has the same name here and blocks instead of returning a coroutine;
handles come back as ``SyncOperationHandle``/``SyncPipelineHandle`` whose ``events()`` is a plain
iterator. The async client runs on a private event loop in one background thread (a Temporal
client belongs to the loop that made it), so a ``StudioSync`` may be shared by threads.

    with StudioSync.connect() as studio:
        result = studio.run("flux-dev", {"prompt": "a lighthouse"}, user_id="u42")
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from config.settings import StudioSettings
from contracts.operation import OperationProgress, OperationResult
from contracts.pipeline import GateOutcome, PipelineProgress, PipelineResult
from studio.api import Studio
from studio.events import RunEvent
from studio.handles import OperationHandle
from studio.pipelines import PipelineHandle

T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="studio")
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, events: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self.call(_next(events))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


async def _next(events: AsyncIterator[T]) -> T:
    return await events.__anext__()


class SyncOperationHandle:
    """A blocking ``OperationHandle``: ``result``, ``progress``, ``events``, ``cancel``."""

    def __init__(self, handle: OperationHandle, loop: _Loop) -> None:
        self.aio = handle
        """The async handle underneath."""
        self._loop = loop

    @property
    def id(self) -> str:
        """The run's id."""
        return self.aio.id

    @property
    def ui_url(self) -> str:
        """The run's page in the Temporal UI."""
        return self.aio.ui_url

    def result(self, timeout: float | None = None) -> OperationResult:
        """Wait for the stored result (``TimeoutError`` after ``timeout`` s; the run goes on)."""
        return self._loop.call(self.aio.result(timeout))

    def progress(self) -> OperationProgress:
        """The run's phase, predictions and cost so far."""
        return self._loop.call(self.aio.progress())

    def events(self, *, last_event_id: str | None = None) -> Iterator[RunEvent]:
        """Progress events, then the result or the error (as ``OperationHandle.events``)."""
        return self._loop.iterate(self.aio.events(last_event_id=last_event_id))

    def cancel(self) -> None:
        """Ask the run to stop; its reservation is released."""
        self._loop.call(self.aio.cancel())


class SyncPipelineHandle:
    """A blocking ``PipelineHandle``: ``result``, ``progress``, ``events``, ``cancel``,
    ``approve``, ``reject``."""

    def __init__(self, handle: PipelineHandle, loop: _Loop) -> None:
        self.aio = handle
        """The async handle underneath."""
        self._loop = loop

    @property
    def id(self) -> str:
        """The run's id."""
        return self.aio.id

    @property
    def ui_url(self) -> str:
        """The run's page in the Temporal UI."""
        return self.aio.ui_url

    def result(self, timeout: float | None = None) -> PipelineResult:
        """Wait for the pipeline to end (``TimeoutError`` after ``timeout`` s)."""
        return self._loop.call(self.aio.result(timeout))

    def progress(self) -> PipelineProgress:
        """Every step's state, outputs and cost so far."""
        return self._loop.call(self.aio.progress())

    def events(self, *, last_event_id: str | None = None) -> Iterator[RunEvent]:
        """Progress and gate events, then the result or the error."""
        return self._loop.iterate(self.aio.events(last_event_id=last_event_id))

    def cancel(self) -> None:
        """Ask the pipeline to stop."""
        self._loop.call(self.aio.cancel())

    def approve(self, **decision: Any) -> GateOutcome:
        """Approve the waiting gate (``PipelineHandle.approve``'s keywords)."""
        return self._loop.call(self.aio.approve(**decision))

    def reject(self, **decision: Any) -> GateOutcome:
        """Reject at the waiting gate (``PipelineHandle.reject``'s keywords)."""
        return self._loop.call(self.aio.reject(**decision))


class StudioSync:
    """``Studio`` with blocking methods of the same names (see the module docstring)."""

    def __init__(self, studio: Studio, loop: _Loop) -> None:
        self.aio = studio
        """The async ``Studio`` underneath (its loop is private: call it through this object)."""
        self._loop = loop

    @classmethod
    def connect(cls, settings: StudioSettings | None = None) -> StudioSync:
        """Connect to the Temporal server the settings name (as ``Studio.connect``)."""
        loop = _Loop()
        try:
            return cls(loop.call(Studio.connect(settings)), loop)
        except BaseException:
            loop.close()
            raise

    def close(self) -> None:
        """Stop the background loop (the Temporal connection goes with it)."""
        self._loop.close()

    def __enter__(self) -> StudioSync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def operation(self, operation_id: str) -> SyncOperationHandle:
        """A handle to an existing operation."""
        return SyncOperationHandle(self.aio.operation(operation_id), self._loop)

    def pipeline(self, pipeline_id: str) -> SyncPipelineHandle:
        """A handle to an existing pipeline run."""
        return SyncPipelineHandle(self.aio.pipeline(pipeline_id), self._loop)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Every other ``Studio`` method, blocking; handles come back as sync handles."""
        target = getattr(self.aio, name)
        if not callable(target):
            return target

        def blocking(*args: Any, **kwargs: Any) -> Any:
            value = target(*args, **kwargs)
            if inspect.isawaitable(value):
                value = self._loop.call(_awaited(value))
            return self._wrap(value)

        blocking.__name__ = name
        blocking.__doc__ = target.__doc__
        return blocking

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, OperationHandle):
            return SyncOperationHandle(value, self._loop)
        if isinstance(value, PipelineHandle):
            return SyncPipelineHandle(value, self._loop)
        return value


async def _awaited(value: Any) -> Any:
    return await value


__all__ = ["StudioSync", "SyncOperationHandle", "SyncPipelineHandle"]
