"""Prometheus endpoints: one ``/metrics`` per process with the Temporal SDK's runtime metrics
(task slots, schedule-to-start latency, poll failures, sticky cache...) and our own.

The SDK exports its metrics from Rust on a Prometheus listener of its own
(``temporalio.runtime.PrometheusConfig``); we bind that to a private loopback port and serve its
text after ours (``prometheus_client``), so Prometheus scrapes one target per process. Worker
counters live in ``activities.metrics``; the API's are here. Labels never hold users, prompts,
ids or secrets.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from studio.stack import free_port

HTTP_REQUESTS = Counter(
    "studio_http_requests", "HTTP API requests by route and status.", ["method", "route", "status"]
)
WEBHOOKS = Counter(
    "studio_webhooks_received",
    "WaveSpeed webhooks: hinted (passed to a run), ignored (not final / not ours), refused.",
    ["outcome"],
)
DOWNLOADS = Counter(
    "studio_downloads", "Files served by the API, by how the caller proved access.", ["via"]
)


@dataclass(frozen=True)
class SdkMetrics:
    """A Temporal runtime whose metrics are on a private Prometheus listener."""

    runtime: Runtime = field(repr=False)
    url: str


@functools.cache
def sdk_metrics() -> SdkMetrics:
    """The process's metrics-enabled Temporal runtime (one per process)."""
    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
        )
    )
    return SdkMetrics(runtime, f"http://{address}/metrics")


def exposition(sdk: SdkMetrics | None) -> bytes:
    """Our metrics, then the SDK's (their names start with ``temporal_``; ours ``studio_``)."""
    ours = generate_latest(REGISTRY)
    if sdk is None:
        return ours
    try:
        theirs = httpx.get(sdk.url, timeout=2.0).content
    except httpx.HTTPError as exc:
        theirs = f"# temporal sdk metrics unavailable: {type(exc).__name__}\n".encode()
    return ours + theirs


@dataclass
class Health:
    """The latest result of a periodic check; stale counts as unhealthy."""

    max_age_seconds: float = 90.0
    ok: bool = False
    detail: dict[str, Any] = field(default_factory=lambda: {"status": "starting"})
    checked_at: float = 0.0

    def record(self, ok: bool, detail: dict[str, Any]) -> None:
        """Keep the result of a check that just ran."""
        self.ok, self.detail, self.checked_at = ok, detail, time.monotonic()

    def current(self) -> tuple[bool, dict[str, Any]]:
        """The last result, or unhealthy when it is older than ``max_age_seconds``."""
        age = time.monotonic() - self.checked_at
        if self.checked_at and age > self.max_age_seconds:
            return False, {**self.detail, "stale_seconds": round(age)}
        return self.ok, self.detail


class MetricsServer:
    """``/metrics`` and ``/healthz`` for a process without a web framework (the worker)."""

    def __init__(self, bind: str, sdk: SdkMetrics | None, health: Health) -> None:
        host, _, port = bind.rpartition(":")
        self._server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), _handler(sdk, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(sdk: SdkMetrics | None, health: Health) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path == "/metrics":
                self._send(200, exposition(sdk), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok, detail = health.current()
                body = json.dumps({"ok": ok, **detail}).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # scrapes every few seconds would drown the logs

    return Handler
