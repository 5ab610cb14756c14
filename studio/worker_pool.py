"""Several worker processes on one host under one supervisor: ``studio worker --processes N``.

One Python process runs workflow code on one core (the GIL); a bigger host scales by running more
of them against the same task queue, which is all Temporal needs. The supervisor starts N
``python -m worker`` children, restarts one that dies (a crash, an OOM kill) with a growing delay,
gives up loudly when they keep dying, and passes SIGTERM/SIGINT on for a graceful shutdown.
With ``STUDIO_METRICS_BIND=host:port`` child i serves its metrics on ``port + i``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from types import FrameType

RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before restarting a child that died, growing with its recent deaths."""
CRASH_WINDOW_SECONDS = 120.0
MAX_CRASHES_IN_WINDOW = 5
"""More deaths than this within the window across all children: the pool stops and fails."""


class WorkerPoolError(RuntimeError):
    """The pool gave up (children keep dying) or was configured wrongly."""


@dataclass
class _Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    restart_at: float | None = None
    deaths: int = 0


@dataclass
class WorkerPool:
    """N ``python -m worker`` processes with the supervisor's environment."""

    processes: int
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    command: tuple[str, ...] = ("-m", "worker")
    """What each child runs with this Python (the benchmark runs its floor worker this way)."""
    grace_seconds: float = 20.0
    """On shutdown, how long children get to finish their current tasks before SIGKILL."""
    _children: list[_Child] = field(default_factory=list)
    _crashes: deque[float] = field(default_factory=deque)
    _stopping: bool = False

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise WorkerPoolError(f"processes: must be at least 1, got {self.processes}")
        self._children = [_Child(i) for i in range(self.processes)]

    def child_env(self, index: int) -> dict[str, str]:
        """The environment of child ``index``: the pool's, with a metrics port of its own."""
        env = dict(self.env)
        bind = env.get("STUDIO_METRICS_BIND")
        if bind:
            host, _, port = bind.rpartition(":")
            if not port.isdigit():
                raise WorkerPoolError(f"STUDIO_METRICS_BIND: expected host:port, got {bind!r}")
            env["STUDIO_METRICS_BIND"] = f"{host}:{int(port) + index}"
        return env

    @property
    def pids(self) -> list[int]:
        """Process ids of the running children."""
        return [c.process.pid for c in self._children if c.process and c.process.poll() is None]

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (exit 0) or until children keep dying (exit 1)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for child in self._children:
                self._start(child)
            while not self._stopping:
                if not self._tend():
                    self._shutdown()
                    return 1
                time.sleep(0.2)
            self._shutdown()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, child: _Child) -> None:
        child.process = subprocess.Popen(
            [sys.executable, *self.command], env=self.child_env(child.index)
        )
        child.restart_at = None
        print(f"worker {child.index}: started (pid {child.process.pid})", file=sys.stderr)

    def _tend(self) -> bool:
        """Restart dead children when their delay is up; False when the pool should give up."""
        now = time.monotonic()
        for child in self._children:
            process = child.process
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            if process is None or process.poll() is None:
                continue
            self._crashes.append(now)
            while self._crashes and now - self._crashes[0] > CRASH_WINDOW_SECONDS:
                self._crashes.popleft()
            if len(self._crashes) > MAX_CRASHES_IN_WINDOW:
                print(
                    f"worker pool: {len(self._crashes)} worker deaths within "
                    f"{CRASH_WINDOW_SECONDS:.0f} s; giving up (see the workers' output above)",
                    file=sys.stderr,
                )
                return False
            delay = RESTART_DELAYS[min(child.deaths, len(RESTART_DELAYS) - 1)]
            child.deaths += 1
            child.restart_at = now + delay
            print(
                f"worker {child.index}: exited with {process.returncode}; "
                f"restarting in {delay:.0f} s",
                file=sys.stderr,
            )
        return True

    def _shutdown(self) -> None:
        running = [c.process for c in self._children if c.process and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
