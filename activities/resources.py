"""What activities share inside one worker process: settings, catalogue, ledger, blobs, provider.

Built once at worker start and handed to the activity classes (dependency injection, as in the
async-activity-completion sample), so a test can build them against its own database and emulator.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import PredictionProvider
from providers.catalogue import Catalogue, load_catalogue
from providers.wavespeed.client import WaveSpeedClient
from studio.blobs import BlobStore
from studio.ledger.blob_owners import BlobOwners
from studio.ledger.db import create_ledger_engine, ensure_schema
from studio.ledger.service import Ledger
from studio.ledger.submissions import SubmissionBook, UploadCache
from studio.settings import StudioSettings


@dataclass
class StudioResources:
    settings: StudioSettings
    catalogue: Catalogue
    ledger: Ledger
    blobs: BlobStore
    provider: PredictionProvider
    submissions: SubmissionBook
    uploads: UploadCache
    owners: BlobOwners

    @classmethod
    def from_settings(cls, settings: StudioSettings) -> StudioResources:
        engine = create_ledger_engine(settings.ledger_url)
        ensure_schema(engine, auto_migrate=settings.auto_migrate)
        ledger = Ledger(engine)
        ledger.sync_plans()
        provider = WaveSpeedClient(
            settings.provider_url,
            settings.api_key(),
            timeout=settings.request_timeout_seconds,
            submit_timeout=settings.submit_timeout_seconds,
        )
        return cls(
            settings=settings,
            catalogue=load_catalogue(),
            ledger=ledger,
            blobs=BlobStore(settings.blob_root, max_pixels=settings.max_input_pixels),
            provider=provider,
            submissions=SubmissionBook(engine),
            uploads=UploadCache(engine),
            owners=BlobOwners(engine),
        )

    async def aclose(self) -> None:
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()
        self.ledger.engine.dispose()
