"""Configuration from the environment (and an optional ``.env``), read by workers, the API and the CLI.

Everything has a working default for the embedded stack: a fresh machine with no network runs
against the local emulator, a SQLite ledger and a blob directory under ``.data/``. Setting
``WAVESPEED_API_KEY`` (and nothing else) switches the same code to the real WaveSpeed API.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

WAVESPEED_PUBLIC_URL = "https://api.wavespeed.ai"
EMULATOR_DEFAULT_PORT = 8765
EMULATOR_DEFAULT_KEY = "emulator-key"


class StudioSettings(BaseSettings):
    """All knobs, env prefix ``STUDIO_`` (e.g. ``STUDIO_DATABASE_URL``)."""

    model_config = SettingsConfigDict(
        env_prefix="STUDIO_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path(".data")
    """Root for the embedded stack: ledger file, blobs, Temporal's database, logs."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "image-studio"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    database_url: str | None = None
    """SQLAlchemy URL of the usage ledger; default ``sqlite:///{data_dir}/ledger.db``."""
    auto_migrate: bool = True
    """Apply Alembic migrations at start; off in production where a deploy step migrates."""

    blob_dir: Path | None = None
    """Content-addressed blob store root; default ``{data_dir}/blobs``."""

    wavespeed_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WAVESPEED_API_KEY", "STUDIO_WAVESPEED_API_KEY")
    )
    wavespeed_base_url: str | None = None
    """Default: the real API when a key is set, the local emulator otherwise."""
    emulator_port: int = EMULATOR_DEFAULT_PORT

    submit_timeout_seconds: float = 30.0
    """Read timeout of the paid POST; past it the submit is ambiguous and gets reconciled."""
    request_timeout_seconds: float = 30.0
    download_timeout_seconds: float = 120.0
    max_output_bytes: int = 512 * 1024 * 1024
    max_input_bytes: int = 20 * 1024 * 1024
    """Largest input image we accept (WaveSpeed's documented image upload cap)."""
    max_input_pixels: int = 100_000_000
    """Decompression-bomb guard for input images."""
    url_fetch_timeout_seconds: float = 20.0
    allow_private_urls: bool = False
    """Only for tests against a local fixture server: lets URL inputs point at private addresses."""

    reconcile_grace_seconds: float | None = None
    """How long after an ambiguous submit before an empty prediction list proves nothing was
    created; default ``submit_timeout_seconds + 5``."""
    provider_resubmits: int = 1
    """Fresh predictions allowed after WaveSpeed fails one with a retryable 5xxx code."""

    activity_start_to_close_seconds: float = 60.0
    """Limit on one activity attempt; a crashed worker's attempt is retried after this."""

    provider_bills_failed: bool = False
    """Whether WaveSpeed charges for predictions that fail; if so they are recorded as provider
    cost (never charged to the user). Reconciliation shows drift if this is set wrongly."""
    maintenance_every_minutes: int = 60
    """Interval of the ledger maintenance schedule (reconciliation, stale holds); 0 = don't install."""
    drift_threshold_usd: Decimal = Decimal("0.50")

    webhook_fallback_seconds: float = 60.0
    """With webhooks on, how long to wait for one before polling takes over."""
    webhook_public_url: str | None = None
    """Public base URL of our HTTP API; when set, predictions are submitted with ``?webhook=``."""
    webhook_secret: SecretStr | None = None
    """WaveSpeed's webhook signing secret (``whsec_…``); fetched from WaveSpeed when unset."""

    api_token: SecretStr | None = None
    """Bearer token the calling backend presents to the HTTP API. Unset: the API trusts the
    ``X-Studio-User`` header alone (only for a private network / the embedded stack)."""
    api_port: int = 8000

    worker_max_workflow_tasks: int = 20
    """Concurrent workflow tasks per worker; more makes the sandbox fight for the GIL on small machines."""
    worker_max_activities: int = 200
    """Concurrent activities per worker (mostly waiting on HTTP)."""
    submit_rate_per_second: float | None = None
    """Cap on paid submits per second across all workers (a server-side task queue rate limit),
    e.g. 0.033 for WaveSpeed's Bronze tier (2 images/min). Unset: no cap."""
    worker_sticky_timeout_seconds: float = 10.0
    """How long a run's next workflow task waits for the worker that has it cached before any
    worker may take it (a crashed worker's runs resume after this)."""
    worker_sandbox: bool = True
    """Run workflows in Temporal's determinism sandbox (off: faster, fewer safety checks)."""

    tracing: Literal["off", "console", "otlp"] = "off"
    """OpenTelemetry: spans from client start through workflow, activities and WaveSpeed calls."""
    otlp_endpoint: str | None = None

    @model_validator(mode="after")
    def _derive_defaults(self) -> StudioSettings:
        data_dir = self.data_dir.resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if self.database_url is None:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'ledger.db'}")
        if self.blob_dir is None:
            object.__setattr__(self, "blob_dir", data_dir / "blobs")
        else:
            object.__setattr__(self, "blob_dir", self.blob_dir.resolve())
        if self.wavespeed_base_url is None:
            url = (
                WAVESPEED_PUBLIC_URL
                if self.wavespeed_api_key is not None
                else f"http://127.0.0.1:{self.emulator_port}"
            )
            object.__setattr__(self, "wavespeed_base_url", url)
        if self.reconcile_grace_seconds is None:
            object.__setattr__(self, "reconcile_grace_seconds", self.submit_timeout_seconds + 5)
        return self

    @property
    def submit_task_queue(self) -> str:
        """Where paid submits run: a queue of their own when they are rate limited."""
        return f"{self.task_queue}-submit" if self.submit_rate_per_second else self.task_queue

    @property
    def uses_emulator(self) -> bool:
        return self.wavespeed_api_key is None

    def api_key(self) -> str:
        """The WaveSpeed key for a worker's client; the emulator's fixed key when none is set."""
        if self.wavespeed_api_key is None:
            return EMULATOR_DEFAULT_KEY
        return self.wavespeed_api_key.get_secret_value()

    @property
    def ledger_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def blob_root(self) -> Path:
        assert self.blob_dir is not None
        return self.blob_dir

    @property
    def provider_url(self) -> str:
        assert self.wavespeed_base_url is not None
        return self.wavespeed_base_url


@functools.cache
def get_settings() -> StudioSettings:
    return StudioSettings()
