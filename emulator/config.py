"""Settings of the local WaveSpeed emulator.

Every knob a test needs to shape the emulated service (timings, money, limits, retention) lives
here, so a test can say "slow model, empty wallet, two slots" without touching code. Values can
come from ``EMULATOR_*`` environment variables, constructor arguments or ``/_emulator/config``.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Fields ``POST /_emulator/config`` and ``EmulatorServer.configure`` may change at run time.
MUTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "processing_seconds",
        "queue_seconds",
        "model_latency",
        "balance_usd",
        "max_concurrency",
        "submits_per_minute",
        "bill_failed",
        "retention_seconds",
        "sync_timeout_seconds",
        "max_upload_bytes",
        "public_url",
        "insufficient_balance_status",
        "insufficient_balance_message",
        "webhook_max_attempts",
        "webhook_retry_seconds",
        "render_on_complete",
    }
)


class EmulatorConfig(BaseSettings):
    """How the emulated WaveSpeed account and service behave."""

    model_config = SettingsConfigDict(
        env_prefix="EMULATOR_", extra="forbid", validate_assignment=True
    )

    api_key: str = "emulator-key"
    """The only Bearer token /api/v3 accepts."""
    processing_seconds: float = Field(default=0.2, ge=0)
    """Time a prediction spends in ``processing``."""
    queue_seconds: float = Field(default=0.0, ge=0)
    """Time a prediction spends in ``created`` before it may start."""
    model_latency: dict[str, float] = Field(default_factory=dict)
    """Per model path override of ``processing_seconds``."""
    balance_usd: Decimal = Decimal(100)
    """Starting account balance; restored by a reset."""
    bill_failed: bool = False
    """Charge failed predictions too (the real service does not, as far as is known)."""
    max_concurrency: int = Field(default=0, ge=0)
    """Running predictions at once; 0 = unlimited. Extra ones wait in ``created``."""
    submits_per_minute: int = Field(default=0, ge=0)
    """Accepted submits per rolling minute; 0 = unlimited. Excess gets 429 + Retry-After."""
    retention_seconds: float = Field(default=7 * 86400, ge=0)
    """After this, predictions, outputs and uploads are gone (404)."""
    webhook_secret: str = "whsec_emulator-secret"
    sync_timeout_seconds: float = Field(default=90, ge=0)
    """How long ``enable_sync_mode`` blocks before answering ``processing`` + code 5004."""
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    public_url: str | None = None
    """Base URL put into ``outputs``/``download_url``; default: the request's own base URL."""
    insufficient_balance_status: int = 403
    insufficient_balance_message: str = "Insufficient balance"
    webhook_max_attempts: int = Field(default=3, ge=1)
    """Delivery attempts per webhook when the receiver fails (non-2xx or no answer)."""
    webhook_retry_seconds: float = Field(default=0.5, ge=0)
    """Pause before the n-th retry is n times this."""
    render_on_complete: bool = True
    """Render output files as soon as a prediction completes; off = on first download (load tests)."""

    def latency_for(self, model_path: str) -> float:
        """Processing time of one prediction of ``model_path``."""
        return float(self.model_latency.get(model_path, self.processing_seconds))
