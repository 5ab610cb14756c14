"""The backend's entry point: start durable image operations and pipelines, get stored results.

Each operation runs as a Temporal workflow: it survives restarts, pays once and can be read in the
Temporal UI. Images may be given as bytes, file paths, https URLs, data URIs or ``BlobRef``s; they
enter the blob store first. Bad input raises ``InvalidRequestError`` naming the field before
anything starts; a refused quota raises ``QuotaExceededError`` (the seed's 429 detail); a failed
run raises ``OperationFailedError`` (nothing charged).

    studio = await Studio.connect()
    result = await studio.generate_image("a lighthouse at dawn", user_id="u42")
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from blobs.ingest import MAX_IMAGES_PER_FIELD, ImageIngestor, ImageSource
from blobs.open_store import open_blob_store
from blobs.signing import url_signer
from config.settings import StudioSettings, get_settings
from contracts.errors import FieldError, InvalidRequestError
from contracts.operation import BlobRef, OperationRequest, OperationResult
from contracts.pipeline import PipelineResult
from contracts.search import (
    STUDIO_MODEL,
    STUDIO_OPERATION,
    STUDIO_PIPELINE,
    STUDIO_STATUS,
    STUDIO_USER,
)
from contracts.webhooks import CallerWebhook, WebhookRun
from domain.options import GenerateOptions, OperationOptions, parse_options
from domain.pricing import CostEstimate, EstimateItem, estimate_cost
from domain.recommend import Recommendation, recommend_model
from domain.requests import compose_request
from domain.run_ids import fingerprint, new_operation_id
from ledger.blob_owners import BlobOwners
from ledger.db import shared_engine
from ledger.run_records import RunRecords
from providers.catalogue import Catalogue, ImageRole, Operation, load_catalogue
from studio.control_operations import ControlOperations
from studio.create_operations import CreateOperations
from studio.edit_operations import EditOperations
from studio.handles import OperationHandle
from studio.model_runs import ModelRuns, as_webhook
from studio.operations import Options
from studio.pipelines import DefinitionSource, PipelineClient, PipelineHandle, PipelineQuote
from studio.retouch_operations import RetouchOperations
from studio.run_list import RunKind, RunPage, list_runs
from studio.temporal import connect, temporal_client, ui_url
from studio.webhooks import start_with_webhook
from workflows.operation import ImageOperationWorkflow

ImageInputs = Mapping[ImageRole, ImageSource | Sequence[ImageSource] | None]


class Studio(CreateOperations, EditOperations, RetouchOperations, ControlOperations, ModelRuns):
    """Holds a Temporal client and the blob store; one per process is plenty.

    Without a client (``Studio(None, settings)``) it still validates, quotes and estimates.
    """

    def __init__(
        self,
        client: Client | None,
        settings: StudioSettings | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or get_settings()
        self.catalogue = catalogue or load_catalogue()
        self.blobs = open_blob_store(self.settings)
        self.signer = url_signer(self.settings)
        """Checks the HTTP API's signed download links."""
        self._ingestor = ImageIngestor(self.blobs, self.settings)
        self.pipelines = PipelineClient(
            client, self.settings, self.catalogue, self.blobs, self._ingestor
        )

    @classmethod
    async def connect(cls, settings: StudioSettings | None = None) -> Studio:
        """A ``Studio`` connected to the Temporal server the settings name."""
        settings = settings or get_settings()
        return cls(await connect(settings), settings)

    @property
    def temporal(self) -> Client:
        """The Temporal client; raises when this ``Studio`` was built without one."""
        return temporal_client(self.client)

    # ------------------------------------------------------------------ any operation

    async def build_request(
        self,
        operation: Operation,
        *,
        user_id: str,
        options: Options = None,
        prompt: str | None = None,
        images: ImageInputs | None = None,
        params: Mapping[str, Any] | None = None,
        label: str | None = None,
        options_type: type[OperationOptions] = OperationOptions,
        pipeline_id: str | None = None,
        step: str | None = None,
        operation_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> OperationRequest:
        """Validate and normalise a request for any operation; no workflow is started.

        Images are stored (and the caller made their owner) before the request is built, so the
        request carries blob references only.

        Raises:
            InvalidRequestError: naming every bad field, before anything is paid.
        """
        opts = parse_options(options_type, options)
        if options_type is OperationOptions or prompt is None:
            self.catalogue.resolve(operation, opts.model)  # unknown model fails before any upload
        asked = None
        if operation_id is None and pipeline_id is None:
            # What the caller asked for, before anything is fetched: a reused key with another
            # request is refused here, so the second body's images are never fetched or stored.
            asked = fingerprint(
                {
                    "operation": operation.value,
                    "user": user_id,
                    "options": opts.model_dump(mode="json"),
                    "prompt": prompt,
                    "params": dict(params or {}),
                    "images": {r.value: _source_token(v) for r, v in (images or {}).items()},
                }
            )
            operation_id = new_operation_id(operation.value, user_id or "", idempotency_key)
            if idempotency_key is not None and user_id:
                await asyncio.to_thread(
                    self.records().check,
                    run_id=operation_id,
                    user_id=user_id,
                    kind="operation",
                    key=idempotency_key,
                    fingerprint=asked,
                )
        request = compose_request(
            self.catalogue,
            operation,
            user_id,
            opts,
            prompt=prompt,
            images=await self._ingest(images or {}, user_id),
            params=params,
            label=label,
            operation_id=operation_id,
            pipeline_id=pipeline_id,
            step=step,
        )
        if asked is None:
            return request
        return request.model_copy(update={"idempotency_key": idempotency_key, "fingerprint": asked})

    async def start_request(
        self,
        operation: Operation,
        *,
        user_id: str,
        options: Options,
        idempotency_key: str | None,
        label: str,
        prompt: str | None = None,
        images: ImageInputs | None = None,
        params: Mapping[str, Any] | None = None,
        options_type: type[OperationOptions] = OperationOptions,
    ) -> OperationHandle:
        """Validate a request for ``operation``, store its images and start its run."""
        request = await self.build_request(
            operation,
            user_id=user_id,
            options=options,
            prompt=prompt,
            images=images,
            params=params,
            label=label,
            options_type=options_type,
            idempotency_key=idempotency_key,
        )
        return await self.start_operation(request)

    async def start_operation(
        self, request: OperationRequest, *, webhook: CallerWebhook | None = None
    ) -> OperationHandle:
        """Start the workflow for a validated request (idempotent per operation id); with
        ``webhook``, its end is POSTed to the caller, signed (``studio.webhooks``)."""
        spec = self.catalogue.get(request.model_id)
        summary = f"{request.label or request.operation} · {spec.path} · user {request.user_id}"
        attributes = [
            SearchAttributePair(STUDIO_USER, request.user_id),
            SearchAttributePair(STUDIO_OPERATION, request.operation),
            SearchAttributePair(STUDIO_MODEL, request.model_id),
            SearchAttributePair(STUDIO_STATUS, "running"),
        ]
        if request.pipeline_id:
            attributes.append(SearchAttributePair(STUDIO_PIPELINE, request.pipeline_id))
        client = self.temporal
        if request.pipeline_id is None:
            claimed = await asyncio.to_thread(
                self.records().claim,
                run_id=request.operation_id,
                user_id=request.user_id,
                kind="operation",
                operation=request.operation,
                key=request.idempotency_key,
                fingerprint=request.fingerprint
                or fingerprint(request.model_dump(mode="json", exclude={"operation_id"})),
            )
            if claimed.ended:  # the same request after its run ended: never a second run
                return OperationHandle(
                    self.operation(request.operation_id).handle,
                    request,
                    ui_url(self.settings, request.operation_id),
                    self.records(),
                )
        if webhook is not None:
            await start_with_webhook(
                client,
                self.settings,
                WebhookRun(
                    run_id=request.operation_id,
                    kind="operation",
                    webhook=webhook,
                    operation=request,
                    search_attributes={p.key.name: str(p.value) for p in attributes},
                    summary=summary.encode()[:200].decode(errors="ignore"),
                    details=_static_details(request, spec.path, spec.price_usd),
                ),
            )
            reattached = self.operation(request.operation_id)
            return OperationHandle(
                reattached.handle, request, reattached.ui_url, reattached.records
            )
        try:
            handle = await client.start_workflow(
                ImageOperationWorkflow.run,
                request,
                id=request.operation_id,
                task_queue=self.settings.task_queue,
                search_attributes=TypedSearchAttributes(attributes),
                static_summary=summary.encode()[:200].decode(errors="ignore"),
                static_details=_static_details(request, spec.path, spec.price_usd),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            # The same idempotency key after the run finished: that run is the answer.
            handle = client.get_workflow_handle_for(
                ImageOperationWorkflow.run, request.operation_id
            )
        return OperationHandle(
            handle, request, ui_url(self.settings, request.operation_id), self.records()
        )

    async def run_operation(self, request: OperationRequest) -> OperationResult:
        """Start a validated request and wait for its stored result."""
        return await (await self.start_operation(request)).result()

    def operation(self, operation_id: str) -> OperationHandle:
        """A handle to an existing operation (by its id, e.g. from the HTTP API or the CLI)."""
        handle: WorkflowHandle[Any, OperationResult] = self.temporal.get_workflow_handle_for(
            ImageOperationWorkflow.run, operation_id
        )
        return OperationHandle(handle, None, ui_url(self.settings, operation_id), self.records())

    async def upload(self, source: ImageSource, *, user_id: str) -> BlobRef:
        """Store an image once (bytes, a path, an https URL, a data URI) and make ``user_id`` its
        owner; pass the ``BlobRef`` (``blob:<sha256>`` over HTTP) to any operation."""
        ref = await self._ingestor.ingest(source, field="file")
        await asyncio.to_thread(self.owners().grant, user_id, [ref.sha256])
        return ref

    async def list_runs(
        self,
        user_id: str,
        *,
        kind: RunKind | None = None,
        status: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> RunPage:
        """A page of ``user_id``'s runs, newest first; ``page.cursor`` fetches the next one."""
        return await list_runs(
            self.records(),
            self.temporal,
            user_id,
            kind=kind,
            status=status,
            operation=operation,
            since=since,
            limit=limit,
            cursor=cursor,
            key=self.signer.key,
        )

    def read(self, blob: BlobRef) -> bytes:
        """The stored file's bytes (checked against its hash by the store)."""
        return self.blobs.read_bytes(blob)

    def save(self, blob: BlobRef, destination: str | os.PathLike[str]) -> Path:
        """Write the stored file to ``destination`` (a file name; the format's suffix is added)."""
        return self.blobs.export(blob, Path(destination))

    def estimate(
        self, requests: OperationRequest | EstimateItem | Iterable[OperationRequest | EstimateItem]
    ) -> CostEstimate:
        """The price of requests before anything runs, from the catalogue."""
        return estimate_cost(self.catalogue, requests)

    def recommend(self, operation: Operation, **constraints: Any) -> Recommendation:
        """A model for ``operation`` by price, resolution and plan tier (see ``recommend_model``)."""
        return recommend_model(self.catalogue, operation, **constraints)

    def download_url(self, blob: BlobRef, *, expires_in: int | None = None) -> str:
        """A URL that serves ``blob`` without credentials until it expires (for ``<img src>``).

        S3: a presigned URL; the local store: a signed link to the HTTP API. ``expires_in``
        defaults to ``STUDIO_DOWNLOAD_URL_TTL_SECONDS``.
        """
        ttl = expires_in if expires_in is not None else self.settings.download_url_ttl_seconds
        return self.blobs.download_url(blob, expires_in=ttl)

    def records(self) -> RunRecords:
        """Every run's durable record: key, request fingerprint, and how it ended."""
        return RunRecords(shared_engine(self.settings.ledger_url, self.settings.auto_migrate))

    def owners(self) -> BlobOwners:
        """Who may read which stored file (the ledger's ownership table)."""
        return BlobOwners(shared_engine(self.settings.ledger_url, self.settings.auto_migrate))

    # ------------------------------------------------------------------ pipelines

    async def quote_pipeline(
        self, definition: DefinitionSource, *, user_id: str, resume_of: str | None = None
    ) -> PipelineQuote:
        """Price a pipeline before it runs; for a resume, only the steps that must run again."""
        return await self.pipelines.quote(definition, user_id, resume_of=resume_of)

    async def start_pipeline(
        self,
        definition: DefinitionSource,
        *,
        user_id: str,
        resume_of: str | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | CallerWebhook | None = None,
    ) -> PipelineHandle:
        """Validate, reserve the quote and start a pipeline; each step runs as a child operation.
        ``webhook_url``: the run's end is POSTed there, signed (``studio.webhooks``)."""
        return await self.pipelines.start(
            definition,
            user_id,
            resume_of=resume_of,
            idempotency_key=idempotency_key,
            webhook=as_webhook(webhook_url),
        )

    async def run_pipeline(
        self,
        definition: DefinitionSource,
        *,
        user_id: str,
        idempotency_key: str | None = None,
    ) -> PipelineResult:
        """Start a pipeline and wait for its result."""
        handle = await self.start_pipeline(
            definition, user_id=user_id, idempotency_key=idempotency_key
        )
        return await handle.result()

    async def resume_pipeline(self, pipeline_id: str) -> PipelineHandle:
        """Run a failed or cancelled pipeline again, paying only for steps that must run again."""
        return await self.pipelines.resume(pipeline_id)

    def pipeline(self, pipeline_id: str) -> PipelineHandle:
        """A handle to an existing pipeline run."""
        return self.pipelines.handle(pipeline_id)

    # ------------------------------------------------------------------ helpers

    async def _ingest(
        self, images: ImageInputs, user_id: str | None
    ) -> dict[ImageRole, BlobRef | list[BlobRef]]:
        refs: dict[ImageRole, BlobRef | list[BlobRef]] = {}
        for role, source in images.items():
            if source is None:
                continue
            field = f"images.{role.value}"
            if isinstance(source, (bytes, bytearray, str, os.PathLike, BlobRef)):
                refs[role] = await self._ingestor.ingest(source, field=field)
            else:
                source = list(source)
                if len(source) > MAX_IMAGES_PER_FIELD:  # refused before anything is fetched
                    raise InvalidRequestError(
                        f"{field} has {len(source)} images",
                        [FieldError(field, "too many images", f"at most {MAX_IMAGES_PER_FIELD}")],
                    )
                refs[role] = [
                    await self._ingestor.ingest(s, field=f"{field}[{i}]")
                    for i, s in enumerate(source)
                ]
        if user_id and refs:  # the caller may read back what it uploaded
            shas = [
                r.sha256
                for value in refs.values()
                for r in (value if isinstance(value, list) else [value])
            ]
            await asyncio.to_thread(self.owners().grant, user_id, shas)
        return refs


def _source_token(source: Any) -> Any:
    """An image argument as it goes into a request fingerprint (bytes by their hash)."""
    if isinstance(source, BlobRef):
        return f"blob:{source.sha256}"
    if isinstance(source, (bytes, bytearray)):
        return f"sha256:{hashlib.sha256(source).hexdigest()}"
    if isinstance(source, os.PathLike):
        return f"path:{os.fspath(source)}"
    if isinstance(source, str):
        return (
            source
            if len(source) <= 2048
            else f"sha256:{hashlib.sha256(source.encode()).hexdigest()}"
        )
    if isinstance(source, Sequence):
        return [_source_token(s) for s in source]
    return repr(source)


def _static_details(request: OperationRequest, path: str, price: Decimal) -> str:
    fields = ", ".join(f"`{k}`" for k in sorted(request.inputs))
    lines = [
        f"**{request.operation}** with `{request.model_id}` (`{path}`), ${price} per result",
        f"- user: `{request.user_id}`; variations: {request.num_variations}",
        f"- inputs: {fields}",
    ]
    if request.pipeline_id:
        lines.append(f"- pipeline: `{request.pipeline_id}`, step `{request.step}`")
    return "\n".join(lines)


__all__ = [
    "GenerateOptions",
    "OperationHandle",
    "OperationOptions",
    "PipelineHandle",
    "PipelineQuote",
    "Studio",
]
