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
STABILITY_PUBLIC_URL = "https://api.stability.ai"
HUGGINGFACE_PUBLIC_URL = "https://router.huggingface.co/hf-inference"
"""What ``huggingface_hub`` builds for provider ``hf-inference``: ``{this}/models/{model id}``."""
GEMINI_PUBLIC_URL = "https://generativelanguage.googleapis.com"


class StudioSettings(BaseSettings):
    """All knobs, env prefix ``STUDIO_`` (e.g. ``STUDIO_DATABASE_URL``)."""

    model_config = SettingsConfigDict(
        env_prefix="STUDIO_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Path(".data")
    """Root for the embedded stack: ledger file, blobs, Temporal's database, logs."""

    temporal_address: str = "127.0.0.1:7233"
    """Overrides the Temporal profile's address when set (see ``studio.temporal``)."""
    temporal_namespace: str = "default"
    """Overrides the Temporal profile's namespace when set."""
    temporal_profile: str | None = None
    """Profile to load from the Temporal config file (default ``TEMPORAL_PROFILE`` or ``default``)."""
    temporal_config_file: Path | None = None
    """Temporal's TOML client config (default ``TEMPORAL_CONFIG_FILE`` or the CLI's own file)."""
    task_queue: str = "image-studio"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    database_url: str | None = None
    """SQLAlchemy URL of the usage ledger; default ``sqlite:///{data_dir}/ledger.db``."""
    auto_migrate: bool = True
    """Apply Alembic migrations at start; off in production where a deploy step migrates."""

    blob_backend: Literal["local", "s3"] = "local"
    """Where blobs live: a local directory (embedded stack) or S3-compatible object storage."""
    blob_dir: Path | None = None
    """Local blob store root; default ``{data_dir}/blobs``."""
    s3_bucket: str | None = None
    s3_prefix: str = "blobs/"
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint the workers and the API use (MinIO, R2...); unset: AWS."""
    s3_public_endpoint_url: str | None = None
    """Endpoint browsers reach for presigned URLs, when it differs (e.g. a public MinIO host)."""
    s3_access_key_id: str | None = None
    """Unset: boto3's credential chain (``AWS_ACCESS_KEY_ID``, profiles, instance roles)."""
    s3_secret_access_key: SecretStr | None = None

    url_signing_key: SecretStr | None = None
    """HMAC key of the API's signed download URLs (local blob store); every API host and Python
    client must share it. Unset: a random key kept in ``{data_dir}/url-signing.key``."""
    download_url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """How long a signed download URL works (S3 presigned URLs allow at most 7 days)."""
    api_public_url: str | None = None
    """Base URL browsers use to reach the HTTP API (signed download links); default the
    webhook URL, else ``http://127.0.0.1:{api_port}``."""

    wavespeed_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WAVESPEED_API_KEY", "STUDIO_WAVESPEED_API_KEY")
    )
    wavespeed_base_url: str | None = None
    """Default: the real API when a key is set, the local emulator otherwise."""
    emulator_port: int = EMULATOR_DEFAULT_PORT
    download_allow_origins: list[str] | None = None
    """Origins (``http://127.0.0.1:8765``) provider outputs may be downloaded from without the URL
    guard (https, public addresses, redirects re-checked). Unset: only the provider API's own
    origin, which is how the local emulator serves its outputs; WaveSpeed's CDN is public https."""

    stability_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("STABILITY_API_KEY", "STUDIO_STABILITY_API_KEY")
    )
    """Stability AI key; without one (and outside emulator mode) Stability drops out of routes."""
    stability_base_url: str | None = None
    """Default: the real API with a key, the emulator's ``/stability`` in emulator mode."""
    stability_timeout_seconds: float = 60.0
    """Read timeout of a synchronous Stability POST; past it the call is possible provider cost
    (docs/providers.md), never repeated on Stability."""

    huggingface_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "HF_TOKEN", "STUDIO_HUGGINGFACE_API_KEY", "HUGGINGFACE_API_KEY"
        ),
    )
    """Hugging Face token (``hf_…``, ``HF_TOKEN`` as the SDK reads it); without one (outside
    emulator mode) Hugging Face drops out of routes."""
    huggingface_base_url: str | None = None
    """Default: the router's ``hf-inference`` base with a key, the emulator's ``/huggingface`` in
    emulator mode; a model's URL is ``{this}/models/{model id}``."""
    huggingface_timeout_seconds: float = 120.0
    """Timeout of a synchronous Hugging Face call; past it the call is possible provider cost."""

    gemini_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GOOGLE_API_KEY", "GEMINI_API_KEY", "STUDIO_GEMINI_API_KEY"),
    )
    """Gemini API key (``GOOGLE_API_KEY`` wins over ``GEMINI_API_KEY``, as in google-genai); without one (outside emulator mode) Gemini drops out of routes."""
    gemini_base_url: str | None = None
    """Default: the Gemini API with a key, the emulator's ``/gemini`` in emulator mode."""
    gemini_timeout_seconds: float = 120.0
    """Timeout of a synchronous Gemini call; past it the call is possible provider cost."""

    submit_timeout_seconds: float = 30.0
    """Read timeout of the paid POST; past it the submit is ambiguous and gets reconciled."""
    request_timeout_seconds: float = 30.0
    download_timeout_seconds: float = 120.0
    max_output_bytes: int = 512 * 1024 * 1024
    max_input_bytes: int = 20 * 1024 * 1024
    """Largest input image we accept (WaveSpeed's documented image upload cap)."""
    max_input_pixels: int = 100_000_000
    """Decompression-bomb guard for input images."""
    max_local_step_pixels: int = Field(default=40_000_000, ge=1)
    """Largest image (width x height) a free local step (crop, ranking) decodes; bigger ones fail
    the step naming it, before their pixels are decoded."""
    local_step_concurrency: int = Field(default=2, ge=1)
    """Free local steps decoding images at once in one worker process (the rest wait), so
    parallel steps cannot multiply the memory one step may use."""
    max_request_bytes: int | None = Field(default=None, ge=1024)
    """Largest HTTP request body; bigger ones get 413 before they are read. Default a little above
    the largest upload: one ``max_input_bytes`` image as base64 in JSON, plus 1 MiB."""
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
    """Reconciliation flags a window whose drift exceeds this many USD ..."""
    drift_threshold_ratio: Decimal = Decimal("0.01")
    """... or this share of the window's spend (once the drift reaches ``drift_floor_usd``) ..."""
    drift_floor_usd: Decimal = Decimal("0.01")
    drift_cumulative_usd: Decimal = Decimal("0.50")
    """... and the running total of drift across windows once it exceeds this many USD."""

    webhook_fallback_seconds: float = 60.0
    """With webhooks on, how long to wait for one before polling takes over."""
    webhook_public_url: str | None = None
    """Public base URL of our HTTP API; when set, predictions are submitted with ``?webhook=``."""
    webhook_secret: SecretStr | None = None
    """WaveSpeed's webhook signing secret (``whsec_…``); fetched from WaveSpeed when unset."""

    api_token: SecretStr | None = None
    """Bearer token the calling backend presents to the HTTP API (the key named ``default``).
    With neither this nor ``api_keys`` set, the API trusts the ``X-Studio-User`` header alone
    (only for a private network / the embedded stack)."""
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Named bearer keys, e.g. ``STUDIO_API_KEYS='{"shop-2026-05": "…", "shop-2026-11": "…"}'``:
    any of them is accepted, and the name (never the key) goes to logs and metrics. Rotate by
    adding the new key, moving callers over, then removing the old one."""
    api_port: int = 8000
    caller_webhook_secret: SecretStr | None = None
    """Standard Webhooks secret (``whsec_<base64>``) signing the webhooks sent to callers
    (``webhook_url`` on a start); workers and API hosts share it. Unset: a key kept in
    ``{data_dir}/caller-webhook.key``."""

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
    worker_tuner: Literal["fixed", "resource-based"] = "fixed"
    """Slots: ``fixed`` (the two maxima above) or the SDK's resource-based tuner, which adds slots
    while CPU and memory stay under 90% / 80% (the maxima above still cap it)."""
    worker_workflow_pollers: int = Field(default=5, ge=1, le=100)
    """Concurrent workflow-task polls (the SDK's default is 5)."""
    worker_activity_pollers: int = Field(default=5, ge=1, le=100)
    """Concurrent activity-task polls (the SDK's default is 5)."""
    worker_poller_autoscaling: bool = False
    """Let the server's poll answers scale the pollers (1 to the counts above) instead of fixed counts."""
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    """Runs kept in the sticky cache (0 disables it: every task replays the history)."""

    metrics_bind: str | None = None
    """``host:port`` of the Prometheus endpoint of a worker (``/metrics``, ``/healthz``); the API
    serves ``/metrics`` on its own port. Unset: no endpoint on the worker."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line with workflow id, run id, operation, user, trace id."""

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
        if self.blob_backend == "s3" and not self.s3_bucket:
            raise ValueError("STUDIO_BLOB_BACKEND=s3 needs STUDIO_S3_BUCKET")
        if self.reconcile_grace_seconds is None:
            object.__setattr__(self, "reconcile_grace_seconds", self.submit_timeout_seconds + 5)
        return self

    @property
    def request_body_limit(self) -> int:
        """``max_request_bytes``, or its default derived from ``max_input_bytes``."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.max_input_bytes * 4 // 3 + 1024 * 1024

    @property
    def submit_task_queue(self) -> str:
        """Where paid submits run: a queue of their own when they are rate limited."""
        return f"{self.task_queue}-submit" if self.submit_rate_per_second else self.task_queue

    def bearer_keys(self) -> dict[str, str]:
        """Every accepted API key by name (``api_token`` is ``default``); empty: no auth."""
        keys = {name: key.get_secret_value() for name, key in self.api_keys.items()}
        if self.api_token is not None:
            keys.setdefault("default", self.api_token.get_secret_value())
        return keys

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
    def api_base_url(self) -> str:
        """Where browsers reach the HTTP API (for signed download links)."""
        base = self.api_public_url or self.webhook_public_url or f"http://127.0.0.1:{self.api_port}"
        return base.rstrip("/")

    def provider_access(self, provider: str) -> tuple[str, str] | None:
        """(base URL, key) a worker uses for ``provider``; None when it has no key (then the
        provider drops out of ``auto`` routes). Emulator mode gives every provider the emulator."""
        if provider == "wavespeed":
            return self.provider_url, self.api_key()
        emulator = f"http://127.0.0.1:{self.emulator_port}"
        if provider == "stability":
            if self.stability_api_key is not None:
                url = self.stability_base_url or STABILITY_PUBLIC_URL
                return url, self.stability_api_key.get_secret_value()
            if self.uses_emulator:
                return self.stability_base_url or f"{emulator}/stability", EMULATOR_DEFAULT_KEY
        if provider == "huggingface":
            return self._keyed(
                self.huggingface_api_key,
                self.huggingface_base_url,
                HUGGINGFACE_PUBLIC_URL,
                f"{emulator}/huggingface",
            )
        if provider == "gemini":
            return self._keyed(
                self.gemini_api_key, self.gemini_base_url, GEMINI_PUBLIC_URL, f"{emulator}/gemini"
            )
        return None

    def _keyed(
        self, key: SecretStr | None, base_url: str | None, public: str, emulator: str
    ) -> tuple[str, str] | None:
        """A keyed provider's access: its key, else the emulator (emulator mode), else none."""
        if key is not None:
            return base_url or public, key.get_secret_value()
        if self.uses_emulator:
            return base_url or emulator, EMULATOR_DEFAULT_KEY
        return None

    @property
    def provider_url(self) -> str:
        assert self.wavespeed_base_url is not None
        return self.wavespeed_base_url


@functools.cache
def get_settings() -> StudioSettings:
    return StudioSettings()
