"""Start, quote, watch, resume and cancel pipelines from a backend (or the CLI)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from providers.catalogue import Catalogue
from studio.blobs import BlobStore
from studio.errors import FieldError, InvalidRequestError
from studio.ingest import ImageIngestor
from studio.ledger.blob_owners import BlobOwners
from studio.ledger.db import shared_engine
from studio.ledger.step_cache import StepCache
from studio.outcomes import failure_from_workflow
from studio.pipelines.contracts import PipelineProgress, PipelineResult, PipelineRunRequest
from studio.pipelines.definition import PipelineDefinition, is_external, load_definition
from studio.pipelines.plan import plan_pipeline
from studio.pipelines.steps import quote_with_reuse
from studio.requests import _ID_SAFE
from studio.search import STUDIO_OPERATION, STUDIO_PIPELINE, STUDIO_STATUS, STUDIO_USER
from studio.settings import StudioSettings
from studio.temporal import temporal_client, ui_url
from workflows.pipeline import ImagePipelineWorkflow

DefinitionSource = PipelineDefinition | Path | str | dict[str, Any]


class StepQuote(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    operation: str
    model_id: str | None
    runs: int
    units: int
    unit_price_usd: Decimal
    worst_case_usd: Decimal
    reusable: bool


class PipelineQuote(BaseModel):
    """The price before anything runs: the full run, and (for a resume) only what runs again."""

    model_config = ConfigDict(frozen=True)

    name: str
    steps: list[StepQuote]
    full_usd: Decimal
    """Every step from scratch (worst case: every variation delivered)."""
    to_reserve_usd: Decimal
    """What this run will hold against the budget: steps with reusable outputs are free."""
    resume_of: str | None = None

    def describe(self) -> str:
        if self.resume_of or self.to_reserve_usd != self.full_usd:
            return (
                f"resume costs at most ${self.to_reserve_usd}, a full rerun costs ${self.full_usd}"
            )
        return f"costs at most ${self.full_usd}"


@dataclass
class PipelineHandle:
    handle: WorkflowHandle[Any, PipelineResult]
    ui_url: str

    @property
    def pipeline_id(self) -> str:
        return self.handle.id

    async def result(self) -> PipelineResult:
        try:
            return await self.handle.result()
        except WorkflowFailureError as exc:
            raise failure_from_workflow(exc, self.handle.id) from None

    async def progress(self) -> PipelineProgress:
        return await self.handle.query(ImagePipelineWorkflow.progress)

    async def cancel(self) -> None:
        await self.handle.cancel()


class PipelineClient:
    def __init__(
        self,
        client: Client,
        settings: StudioSettings,
        catalogue: Catalogue,
        blobs: BlobStore,
        ingestor: ImageIngestor,
    ) -> None:
        self._client = client
        self._settings = settings
        self._catalogue = catalogue
        self._blobs = blobs
        self._ingestor = ingestor

    def _cache(self) -> StepCache:
        return StepCache(shared_engine(self._settings.ledger_url, self._settings.auto_migrate))

    async def quote(
        self,
        source: DefinitionSource,
        user_id: str,
        *,
        resume_of: str | None = None,
        untrusted: bool = False,
    ) -> PipelineQuote:
        definition = await self._stored_inputs(_definition(source), user_id if untrusted else None)
        return self._quote(definition, user_id, resume_of)

    def _quote(
        self, definition: PipelineDefinition, user_id: str, resume_of: str | None
    ) -> PipelineQuote:
        plan = plan_pipeline(definition, self._catalogue)
        cache = self._cache()
        lineage = cache.lineage(resume_of) if resume_of else []
        reuse = quote_with_reuse(
            plan,
            self._catalogue,
            cache,
            self._blobs,
            user_id=user_id,
            pipeline_id="quote",
            lineage=lineage,
        )
        return PipelineQuote(
            name=definition.name,
            steps=[
                StepQuote(
                    name=p.step.name,
                    operation=p.step.operation,
                    model_id=p.spec.id if p.spec else None,
                    runs=p.runs,
                    units=p.units,
                    unit_price_usd=p.unit_price,
                    worst_case_usd=p.worst_case,
                    reusable=p.step.name in reuse.reusable_steps,
                )
                for p in plan.steps
            ],
            full_usd=reuse.full_usd,
            to_reserve_usd=reuse.resume_usd,
            resume_of=resume_of,
        )

    async def start(
        self,
        source: DefinitionSource,
        user_id: str,
        *,
        resume_of: str | None = None,
        pipeline_id: str | None = None,
        idempotency_key: str | None = None,
        untrusted: bool = False,
    ) -> PipelineHandle:
        """Validate (errors name step and field, nothing reserved), store external inputs, start.

        ``untrusted`` (the HTTP API): no server paths, and ``blob:`` files must be the user's own.
        """
        definition = await self._stored_inputs(_definition(source), user_id if untrusted else None)
        plan_pipeline(definition, self._catalogue)
        pipeline_id = pipeline_id or self._new_id(
            definition.name, user_id, resume_of, idempotency_key
        )
        request = PipelineRunRequest(
            pipeline_id=pipeline_id,
            user_id=user_id,
            definition=definition.model_dump(mode="json"),
            resume_of=resume_of,
        )
        client = temporal_client(self._client)
        try:
            handle = await self._start_workflow(client, request, definition)
        except (
            WorkflowAlreadyStartedError
        ):  # the same idempotency key again: that run is the answer
            handle = client.get_workflow_handle_for(ImagePipelineWorkflow.run, pipeline_id)
        return PipelineHandle(handle, ui_url(self._settings, pipeline_id))

    async def _start_workflow(
        self, client: Client, request: PipelineRunRequest, definition: PipelineDefinition
    ) -> WorkflowHandle[Any, PipelineResult]:
        pipeline_id, user_id, resume_of = request.pipeline_id, request.user_id, request.resume_of
        return await client.start_workflow(
            ImagePipelineWorkflow.run,
            request,
            id=pipeline_id,
            task_queue=self._settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(STUDIO_USER, user_id),
                    SearchAttributePair(STUDIO_OPERATION, "pipeline"),
                    SearchAttributePair(STUDIO_PIPELINE, pipeline_id),
                    SearchAttributePair(STUDIO_STATUS, "running"),
                ]
            ),
            static_summary=f"pipeline {definition.name} · {len(definition.steps)} steps · user {user_id}"[
                :200
            ],
            static_details="\n".join(
                [f"**pipeline `{definition.name}`** {definition.description}", ""]
                + [
                    f"- `{s.name}`: {s.operation}" + (f" with `{s.model}`" if s.model else "")
                    for s in definition.steps
                ]
                + ([f"- resumes `{resume_of}`"] if resume_of else [])
            ),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    def _check_untrusted(self, text: str, user_id: str, field: str) -> None:
        if text.startswith(("https://", "http://", "data:image/")):
            return
        sha = text.removeprefix("blob:")
        owners = BlobOwners(shared_engine(self._settings.ledger_url, self._settings.auto_migrate))
        if text.startswith("blob:") and owners.owns(user_id, sha):
            return
        raise InvalidRequestError(
            "unsupported input reference",
            [
                FieldError(
                    field,
                    f"{text[:40]!r} is not allowed here",
                    "https URL, data:image URI or blob:<sha256> you own",
                )
            ],
        )

    async def resume(self, pipeline_id: str) -> PipelineHandle:
        """Run a stopped pipeline again; steps with stored, intact outputs are not paid again."""
        cache = self._cache()
        previous = cache.run(pipeline_id)
        if previous is None:
            raise InvalidRequestError(
                "unknown pipeline run", [FieldError("run", f"no pipeline run {pipeline_id!r}")]
            )
        if previous.status in ("running", "succeeded"):
            raise InvalidRequestError(
                "only stopped pipelines can be resumed",
                [
                    FieldError(
                        "run", f"{pipeline_id} is {previous.status}", "a failed or cancelled run"
                    )
                ],
            )
        return await self.start(previous.definition, previous.user_id, resume_of=pipeline_id)

    def handle(self, pipeline_id: str) -> PipelineHandle:
        return PipelineHandle(
            temporal_client(self._client).get_workflow_handle_for(
                ImagePipelineWorkflow.run, pipeline_id
            ),
            ui_url(self._settings, pipeline_id),
        )

    def _new_id(self, name: str, user_id: str, resume_of: str | None, key: str | None) -> str:
        if resume_of:
            root = re.sub(r"-r\d+$", "", resume_of)
            return f"{root}-r{len(self._cache().lineage(resume_of))}"
        suffix = _ID_SAFE.sub("-", key)[:60] if key else secrets.token_hex(4)
        return f"pipeline-{_ID_SAFE.sub('-', name)[:40]}-{_ID_SAFE.sub('-', user_id)[:40]}-{suffix}"

    async def _stored_inputs(
        self, definition: PipelineDefinition, untrusted_user: str | None
    ) -> PipelineDefinition:
        """Put external files (URLs, paths, data URIs) in the blob store; refer to them by hash."""
        steps = []
        for step in definition.steps:
            inputs: dict[str, Any] = {}
            for role, value in step.inputs.items():
                values = value if isinstance(value, list) else [value]
                stored = []
                for text in values:
                    if untrusted_user is not None and is_external(text):
                        self._check_untrusted(
                            text, untrusted_user, f"steps.{step.name}.inputs.{role}"
                        )
                    if is_external(text) and not text.startswith("blob:"):
                        ref = await self._ingestor.ingest(
                            text, field=f"steps.{step.name}.inputs.{role}"
                        )
                        text = f"blob:{ref.sha256}"
                    stored.append(text)
                inputs[role] = stored if isinstance(value, list) else stored[0]
            steps.append(step.model_copy(update={"inputs": inputs}))
        return definition.model_copy(update={"steps": steps})


def _definition(source: DefinitionSource) -> PipelineDefinition:
    return source if isinstance(source, PipelineDefinition) else load_definition(source)
