"""Waiting on conditions, never on the clock: a test waits until what it needs is true, with a
generous bound that only a real failure reaches (a 2-core CI machine can be slow, never wrong)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from contracts.operation import OperationPhase


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_phase(handle: Any, phase: OperationPhase, timeout: float = 60.0) -> None:
    """Until the operation's progress query reports ``phase`` (queries may fail while starting).

    ``handle`` is the studio's operation handle or a plain Temporal workflow handle."""
    from workflows.operation import ImageOperationWorkflow

    async def reached() -> bool:
        try:
            if hasattr(handle, "progress"):
                progress = await handle.progress()
            else:
                progress = await handle.query(ImageOperationWorkflow.progress)
            return progress.phase == phase
        except Exception:  # noqa: BLE001 - not yet queryable: keep waiting
            return False

    await wait_until(reached, f"{getattr(handle, 'workflow_id', handle)} to reach {phase}", timeout)
