"""Start, quote, watch, resume and cancel pipelines from a backend (or the CLI)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from blobs.ingest import ImageIngestor
from blobs.store import BlobStore
from config.settings import StudioSettings
from contracts.errors import DecisionRefusedError, FieldError, InvalidRequestError
from contracts.pipeline import (
    GateDecision,
    GateOutcome,
    PipelineProgress,
    PipelineResult,
    PipelineRunRequest,
)
from contracts.search import STUDIO_OPERATION, STUDIO_PIPELINE, STUDIO_STATUS, STUDIO_USER
from contracts.webhooks import CallerWebhook, WebhookRun
from domain.pipelines.definition import PipelineDefinition, is_external, load_definition
from domain.pipelines.plan import plan_pipeline
from domain.pipelines.steps import check_local_budget, quote_with_reuse
from domain.run_ids import fingerprint, new_pipeline_id
from ledger.blob_owners import BlobOwners
from ledger.db import shared_engine
from ledger.run_records import RunRecords
from ledger.step_cache import PipelineRunInfo, StepCache
from providers.catalogue import Catalogue
from studio.events import RunEvent, follow
from studio.outcomes import (
    refusal_from_update,
    run_result,
)
from studio.temporal import temporal_client, ui_url
from studio.webhooks import start_with_webhook
from workflows.pipeline import ImagePipelineWorkflow

DefinitionSource = PipelineDefinition | Path | str | dict[str, Any]


class StepQuote(BaseModel):
    """One step in a quote: runs, units, the worst case, and whether stored outputs cover it."""

    model_config = ConfigDict(frozen=True)

    name: str
    operation: str
    model_id: str | None
    runs: int
    units: int
    unit_price_usd: Decimal
    worst_case_usd: Decimal
    reusable: bool
    after_approval: bool = False
    """Runs only once a person approves at a gate before it (held, not yet spent)."""


class PipelineQuote(BaseModel):
    """The price before anything runs: the full run, and (for a resume) only what runs again."""

    model_config = ConfigDict(frozen=True)

    name: str
    steps: list[StepQuote]
    full_usd: Decimal
    """Every step from scratch (worst case: every variation delivered)."""
    to_reserve_usd: Decimal
    """What this run will hold against the budget: steps with reusable outputs are free.
    Steps after a gate are included: their share stays held while the gate waits."""
    now_usd: Decimal
    """The part of ``to_reserve_usd`` that runs before any approval."""
    conditional_steps: list[str] = Field(default_factory=list)
    """Steps that run only after a person approves (nothing is spent on them before)."""
    resume_of: str | None = None

    def describe(self) -> str:
        """One sentence for people: what this run costs at most (and a full rerun, for a resume)."""
        if self.conditional_steps:
            text = f"now ${self.now_usd}, after approval up to ${self.to_reserve_usd}"
            if self.resume_of or self.to_reserve_usd != self.full_usd:
                return f"resume costs {text}; a full rerun costs ${self.full_usd}"
            return text
        if self.resume_of or self.to_reserve_usd != self.full_usd:
            return (
                f"resume costs at most ${self.to_reserve_usd}, a full rerun costs ${self.full_usd}"
            )
        return f"costs at most ${self.full_usd}"


@dataclass
class PipelineHandle:
    """A started (or existing) pipeline run: wait for it, watch it, cancel it."""

    handle: WorkflowHandle[Any, PipelineResult]
    ui_url: str
    records: RunRecords | None = None
    """Where the run's ending is kept after Temporal's retention forgets it."""

    @property
    def pipeline_id(self) -> str:
        """The run's workflow id."""
        return self.handle.id

    @property
    def id(self) -> str:
        """The run's id (the same as ``pipeline_id``)."""
        return self.handle.id

    async def result(self, timeout: float | None = None) -> PipelineResult:
        """Wait for the pipeline to end, at most ``timeout`` seconds (the run goes on after that).

        Raises:
            TimeoutError: the run had not ended within ``timeout``.
            InvalidRequestError: a step's pre-flight refused its request.
            QuotaExceededError: a plan limit or cost cap refused it.
            OperationFailedError: a step failed, or the run was cancelled or timed out.
        """
        return await run_result(self.handle, self.records, "pipeline", PipelineResult, timeout)

    async def progress(self) -> PipelineProgress:
        """Every step's state, outputs and cost so far (a query: leaves no history)."""
        return await self.handle.query(ImagePipelineWorkflow.progress)

    def events(self, *, last_event_id: str | None = None) -> AsyncIterator[RunEvent]:
        """Progress events, one ``ApprovalEvent`` per gate that starts waiting, then a
        ``ResultEvent`` or an ``ErrorEvent`` (``studio.events``)."""
        return follow(self.handle, self.progress, last_event_id=last_event_id)

    async def cancel(self) -> None:
        """Ask the pipeline to stop: running steps are cancelled and its budget hold released."""
        await self.handle.cancel()

    async def approve(
        self,
        *,
        user_id: str,
        chosen: Sequence[int] | int | None = None,
        comment: str | None = None,
        gate: str | None = None,
    ) -> GateOutcome:
        """Approve the waiting gate as ``user_id``; ``chosen`` picks shown outputs (from 0).

        Raises ``DecisionRefusedError`` (not an approver, nothing waiting, already decided) or
        ``InvalidRequestError`` (a choice that is not among the shown outputs).
        """
        picks = [chosen] if isinstance(chosen, int) else None if chosen is None else list(chosen)
        return await self.decide(
            user_id=user_id, decision="approve", chosen=picks, comment=comment, gate=gate
        )

    async def reject(
        self, *, user_id: str, comment: str | None = None, gate: str | None = None
    ) -> GateOutcome:
        """Reject at the waiting gate: nothing after it runs, its hold is released."""
        return await self.decide(user_id=user_id, decision="reject", comment=comment, gate=gate)

    async def decide(self, **fields: Any) -> GateOutcome:
        """Send a decision (the fields of ``GateDecision``); refusals come back as errors."""
        try:
            decision = GateDecision(**fields)
        except ValidationError as exc:
            raise InvalidRequestError(
                "invalid decision",
                [FieldError(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()],
            ) from None
        try:
            return await self.handle.execute_update(ImagePipelineWorkflow.decide, decision)
        except WorkflowUpdateFailedError as exc:
            raise refusal_from_update(exc, self.pipeline_id) from None
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        try:  # the run has ended (or never existed): say which
            description = await self.handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            raise DecisionRefusedError(
                f"no pipeline run {self.pipeline_id}", pipeline_id=self.pipeline_id
            ) from None
        ended = description.typed_search_attributes.get(STUDIO_STATUS) or (
            description.status.name.lower() if description.status else "ended"
        )
        raise DecisionRefusedError(
            f"pipeline {self.pipeline_id} has ended ({ended}): nothing waits for a decision",
            pipeline_id=self.pipeline_id,
        )


class PipelineClient:
    """Quotes, starts, resumes and finds pipeline runs (``Studio.pipelines``)."""

    def __init__(
        self,
        client: Client | None,
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

    def _records(self) -> RunRecords:
        return RunRecords(shared_engine(self._settings.ledger_url, self._settings.auto_migrate))

    def stored_run(self, pipeline_id: str) -> PipelineRunInfo | None:
        """What the database remembers of a pipeline run (definition, user, status), if anything."""
        return self._cache().run(pipeline_id)

    async def quote(
        self,
        source: DefinitionSource,
        user_id: str,
        *,
        resume_of: str | None = None,
        untrusted: bool = False,
    ) -> PipelineQuote:
        """The price of a pipeline before anything runs.

        Args:
            source: A definition: the model, a dict, YAML/JSON text or a file path.
            user_id: Who would run it (``blob:`` files must be theirs when ``untrusted``).
            resume_of: A stopped run to resume: steps whose stored outputs are intact cost nothing.
            untrusted: From the HTTP API: no server paths, only the user's own ``blob:`` files.

        Raises:
            InvalidRequestError: the definition is invalid; errors name the step and field.
        """
        definition = await self._stored_inputs(_definition(source), user_id if untrusted else None)
        return self._quote(definition, user_id, resume_of)

    def _quote(
        self, definition: PipelineDefinition, user_id: str, resume_of: str | None
    ) -> PipelineQuote:
        plan = plan_pipeline(definition, self._catalogue)
        check_local_budget(plan, self._blobs, self._settings.max_local_step_pixels)
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
                    after_approval=p.step.name in reuse.conditional_steps,
                )
                for p in plan.steps
            ],
            full_usd=reuse.full_usd,
            to_reserve_usd=reuse.resume_usd,
            now_usd=reuse.now_usd,
            conditional_steps=sorted(reuse.conditional_steps),
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
        webhook: CallerWebhook | None = None,
    ) -> PipelineHandle:
        """Validate (errors name step and field, nothing reserved), store external inputs, start.

        ``untrusted`` (the HTTP API): no server paths, and ``blob:`` files must be the user's own.
        ``webhook``: the run's end is POSTed to the caller, signed (``studio.webhooks``).
        """
        definition = _definition(source)
        asked = fingerprint(
            {"definition": definition.model_dump(mode="json"), "resume_of": resume_of}
        )
        pipeline_id = pipeline_id or self._new_id(
            definition.name, user_id, resume_of, idempotency_key
        )
        records = self._records()
        await asyncio.to_thread(  # before any input is fetched
            records.check,
            run_id=pipeline_id,
            user_id=user_id,
            kind="pipeline",
            key=idempotency_key,
            fingerprint=asked,
        )
        definition = await self._stored_inputs(definition, user_id if untrusted else None)
        plan_pipeline(definition, self._catalogue)
        claimed = await asyncio.to_thread(
            records.claim,
            run_id=pipeline_id,
            user_id=user_id,
            kind="pipeline",
            operation=definition.name,
            key=idempotency_key,
            fingerprint=asked,
        )
        if claimed.ended:  # the same request after its run ended: never a second run
            return self.handle(pipeline_id)
        request = PipelineRunRequest(
            pipeline_id=pipeline_id,
            user_id=user_id,
            definition=definition.model_dump(mode="json"),
            resume_of=resume_of,
        )
        client = temporal_client(self._client)
        if webhook is not None:
            await start_with_webhook(
                client,
                self._settings,
                WebhookRun(
                    run_id=pipeline_id,
                    kind="pipeline",
                    webhook=webhook,
                    pipeline=request,
                    search_attributes={
                        STUDIO_USER.name: user_id,
                        STUDIO_OPERATION.name: "pipeline",
                        STUDIO_PIPELINE.name: pipeline_id,
                        STUDIO_STATUS.name: "running",
                    },
                    summary=f"pipeline {definition.name} · user {user_id}"[:200],
                ),
            )
            return self.handle(pipeline_id)
        try:
            handle = await self._start_workflow(client, request, definition)
        except WorkflowAlreadyStartedError:  # the same key again: that run is the answer
            handle = client.get_workflow_handle_for(ImagePipelineWorkflow.run, pipeline_id)
        return PipelineHandle(handle, ui_url(self._settings, pipeline_id), records)

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
        """A handle to an existing pipeline run (not checked to exist)."""
        return PipelineHandle(
            temporal_client(self._client).get_workflow_handle_for(
                ImagePipelineWorkflow.run, pipeline_id
            ),
            ui_url(self._settings, pipeline_id),
            self._records(),
        )

    def _new_id(self, name: str, user_id: str, resume_of: str | None, key: str | None) -> str:
        if resume_of:
            root = re.sub(r"-r\d+$", "", resume_of)
            return f"{root}-r{len(self._cache().lineage(resume_of))}"
        return new_pipeline_id(name, user_id, key)

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
