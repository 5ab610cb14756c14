"""``EmulatorServer``: a real HTTP server on 127.0.0.1 in a background thread, for tests.

The production client talks to it over real sockets (so timeouts, resets and lost responses
behave as on the network), while the test keeps direct handles on the state for faults,
counters and configuration without any HTTP of its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Self

import uvicorn

from emulator import gemini, huggingface
from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.faults import FaultRule, as_rules
from emulator.paid import InlineAccount
from emulator.stability import PREFIX, StabilityAccount
from emulator.state import EmulatorState
from providers.catalogue import Catalogue


class EmulatorServer:
    """Start/stop a WaveSpeed emulator; usable as a (sync) context manager."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        catalogue: Catalogue | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.config = config or EmulatorConfig()
        self.app = create_app(self.config, catalogue)
        self.state: EmulatorState = self.app.state.emulator
        self.host = host
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL to give the client, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self._port}"

    @property
    def api_key(self) -> str:
        return self.state.config.api_key

    def start(self, timeout: float = 10.0) -> Self:
        """Bind, serve in a daemon thread, and return once connections are accepted."""
        if self._thread is not None:
            return self
        sock = socket.socket(
            socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        server = self._server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(
            target=run, name=f"wavespeed-emulator-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emulator did not start: {self._error!r}")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin helpers

    def set_faults(self, rules: FaultRule | Mapping[str, Any] | Iterable[Any]) -> None:
        """Replace all fault rules."""
        self.state.faults.replace(as_rules(rules))

    def add_fault(self, rule: FaultRule | Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Add one rule: a ``FaultRule``, a dict, or its fields as keywords."""
        self.state.faults.add(as_rules(rule if rule is not None else fields))

    @property
    def stability(self) -> StabilityAccount:
        """The emulated Stability account under ``/stability`` (credits, jobs, counters)."""
        account: StabilityAccount = self.app.state.stability
        return account

    @property
    def stability_url(self) -> str:
        """Base URL to give the Stability client."""
        return f"{self.url}{PREFIX}"

    @property
    def huggingface(self) -> InlineAccount:
        """The emulated Hugging Face account under ``/huggingface`` (paid calls per model)."""
        account: InlineAccount = self.app.state.huggingface
        return account

    @property
    def huggingface_url(self) -> str:
        """Base URL to give the Hugging Face client (models at ``{this}/models/{id}``)."""
        return f"{self.url}{huggingface.PREFIX}"

    @property
    def gemini(self) -> InlineAccount:
        """The emulated Gemini account under ``/gemini`` (paid calls per model)."""
        account: InlineAccount = self.app.state.gemini
        return account

    @property
    def gemini_url(self) -> str:
        """Base URL to give the Gemini client (``HttpOptions.base_url``)."""
        return f"{self.url}{gemini.PREFIX}"

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        return self.state.faults.describe()

    def reset(self) -> None:
        """Clear predictions, uploads, counters and faults; restore the configured balance."""
        self.state.reset()
        self.stability.reset()
        self.huggingface.reset()
        self.gemini.reset()

    def configure(self, **changes: Any) -> EmulatorConfig:
        return self.state.configure(changes)

    def stats(self) -> dict[str, Any]:
        return self.state.stats_view()

    def predictions(self) -> list[dict[str, Any]]:
        return [self.state.admin_view(r) for r in self.state.records()]

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        record = self.state.get(prediction_id)
        return self.state.admin_view(record) if record else None

    @property
    def balance(self) -> float:
        return float(self.state.balance)
