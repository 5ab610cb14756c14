"""What activities share inside one worker process: settings, catalogue, ledger, blobs, provider.

Built once at worker start and handed to the activity classes (dependency injection, as in the
async-activity-completion sample), so a test can build them against its own database and emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blobs.open_store import open_blob_store
from blobs.store import BlobStore
from config.settings import StudioSettings
from ledger.blob_owners import BlobOwners
from ledger.db import create_ledger_engine, ensure_schema
from ledger.service import Ledger
from ledger.submissions import SubmissionBook, UploadCache
from providers.base import InlineImageProvider, PredictionProvider
from providers.catalogue import Catalogue, load_catalogue
from providers.gemini.client import GeminiClient
from providers.huggingface.client import HuggingFaceClient
from providers.stability.client import StabilityClient
from providers.wavespeed.client import WaveSpeedClient


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
    others: dict[str, PredictionProvider] = field(default_factory=dict)
    """Providers besides WaveSpeed (``provider``) whose key this worker has, by name."""
    inline: dict[str, InlineImageProvider] = field(default_factory=dict)
    """The same providers' synchronous calls (the image in the POST response), by name."""

    def provider_for(self, name: str) -> PredictionProvider:
        """The client of ``name``; a worker without its key cannot run its models."""
        if name == "wavespeed":
            return self.provider
        if name not in self.others:
            raise LookupError(f"this worker has no key for provider {name!r}")
        return self.others[name]

    def available(self) -> frozenset[str]:
        """Providers this worker can call (the rest drop out of ``auto`` routes)."""
        return frozenset({"wavespeed", *self.others, *self.inline})

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
            download_allow=settings.download_allow_origins,
        )
        others: dict[str, PredictionProvider] = {}
        inline: dict[str, InlineImageProvider] = {}
        access = settings.provider_access("stability")
        if access is not None:
            stability = StabilityClient(
                access[0],
                access[1],
                timeout=settings.request_timeout_seconds,
                submit_timeout=settings.stability_timeout_seconds,
            )
            others["stability"], inline["stability"] = stability, stability
        inline.update(_sdk_clients(settings))
        return cls(
            others=others,
            inline=inline,
            settings=settings,
            catalogue=load_catalogue(),
            ledger=ledger,
            blobs=open_blob_store(settings),
            provider=provider,
            submissions=SubmissionBook(engine),
            uploads=UploadCache(engine),
            owners=BlobOwners(engine),
        )

    async def aclose(self) -> None:
        closed: set[int] = set()
        for provider in (self.provider, *self.others.values(), *self.inline.values()):
            close = getattr(provider, "aclose", None)
            if close is not None and id(provider) not in closed:
                closed.add(id(provider))
                await close()
        self.ledger.engine.dispose()


def _sdk_clients(settings: StudioSettings) -> dict[str, InlineImageProvider]:
    """The synchronous-only providers (official SDKs) this worker has a key for, by name."""
    clients: dict[str, InlineImageProvider] = {}
    access = settings.provider_access("huggingface")
    if access is not None:
        clients["huggingface"] = HuggingFaceClient(
            access[0], access[1], timeout=settings.huggingface_timeout_seconds
        )
    access = settings.provider_access("gemini")
    if access is not None:
        clients["gemini"] = GeminiClient(
            access[0], access[1], timeout=settings.gemini_timeout_seconds
        )
    return clients
