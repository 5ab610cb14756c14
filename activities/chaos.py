"""Crash points for the chaos suite: the worker process kills itself (SIGKILL, no cleanup) at a
named point, once per operation, so tests can prove a crash there loses and double-pays nothing.

Inert unless ``STUDIO_CHAOS_CRASH_AT`` lists points (comma-separated, or ``all``) and
``STUDIO_CHAOS_DIR`` names a directory for the once-only markers; production never sets them.
``STUDIO_CHAOS_MAX_PER_POINT`` caps how many operations each point crashes.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

POINTS = (
    "before_submit",
    "after_submit",
    "while_waiting",
    "while_storing",
    "before_settle",
    "after_settle",
)


def crash_point(name: str, key: str) -> None:
    wanted = os.environ.get("STUDIO_CHAOS_CRASH_AT")
    if not wanted or (wanted != "all" and name not in wanted.split(",")):
        return
    directory = Path(os.environ["STUDIO_CHAOS_DIR"])
    limit = int(os.environ.get("STUDIO_CHAOS_MAX_PER_POINT", "0"))
    if limit and len(list(directory.glob(f"{name}-*"))) >= limit:
        return
    marker = directory / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return  # this point already crashed this operation once
    os.kill(os.getpid(), signal.SIGKILL)
