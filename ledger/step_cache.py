"""Pipeline runs and their steps' stored outputs, found again by fingerprint for resume and reuse."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.operation import StoredOutput
from ledger.db import reading
from ledger.schema import PipelineRun, StepResult
from ledger.values import from_micros, to_micros, utcnow


@dataclass(frozen=True)
class PipelineRunInfo:
    pipeline_id: str
    user_id: str
    name: str
    definition: dict[str, Any]
    resume_of: str | None
    status: str
    quoted: Decimal


@dataclass(frozen=True)
class CachedStep:
    pipeline_id: str
    step: str
    run_index: int
    outputs: list[StoredOutput]
    cost: Decimal


class StepCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ runs

    def record_run(
        self,
        *,
        pipeline_id: str,
        user_id: str,
        name: str,
        definition: dict[str, Any],
        resume_of: str | None,
        quoted: Decimal,
    ) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                if s.get(PipelineRun, pipeline_id) is None:
                    s.add(
                        PipelineRun(
                            pipeline_id=pipeline_id,
                            user_id=user_id,
                            name=name,
                            definition_json=json.dumps(definition, sort_keys=True),
                            resume_of=resume_of,
                            quoted_micros=to_micros(quoted),
                            status="running",
                            created_at=utcnow(),
                        )
                    )
        except IntegrityError:
            pass  # recorded by a concurrent attempt

    def set_status(self, pipeline_id: str, status: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(PipelineRun)
                .where(PipelineRun.pipeline_id == pipeline_id)
                .values(status=status)
            )

    def run(self, pipeline_id: str) -> PipelineRunInfo | None:
        with Session(reading(self.engine)) as s:
            row = s.get(PipelineRun, pipeline_id)
            if row is None:
                return None
            return PipelineRunInfo(
                row.pipeline_id,
                row.user_id,
                row.name,
                json.loads(row.definition_json),
                row.resume_of,
                row.status,
                from_micros(row.quoted_micros),
            )

    def lineage(self, pipeline_id: str) -> list[str]:
        """This run and every run it resumes, newest first."""
        chain: list[str] = []
        current: str | None = pipeline_id
        while current and current not in chain:
            chain.append(current)
            info = self.run(current)
            current = info.resume_of if info else None
        return chain

    def resumes_of(self, pipeline_id: str) -> int:
        with Session(reading(self.engine)) as s:
            return len(
                list(
                    s.scalars(
                        select(PipelineRun.pipeline_id).where(PipelineRun.resume_of == pipeline_id)
                    )
                )
            )

    # ------------------------------------------------------------------ step results

    def record(
        self,
        *,
        fingerprint: str,
        user_id: str,
        pipeline_id: str,
        step: str,
        run_index: int,
        deterministic: bool,
        outputs: list[StoredOutput],
        cost: Decimal,
    ) -> None:
        try:
            with Session(self.engine) as s, s.begin():
                s.add(
                    StepResult(
                        fingerprint=fingerprint,
                        user_id=user_id,
                        pipeline_id=pipeline_id,
                        step=step,
                        run_index=run_index,
                        deterministic=int(deterministic),
                        outputs_json=json.dumps([o.model_dump(mode="json") for o in outputs]),
                        cost_micros=to_micros(cost),
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # already recorded (a retried activity)

    def candidates(self, fingerprint: str, user_id: str, *, lineage: list[str]) -> list[CachedStep]:
        """Stored results with this fingerprint the run may use: from its own resume chain (any
        step), or from any run of the same user when the step is deterministic. Newest first."""
        with Session(reading(self.engine)) as s:
            rows = s.scalars(
                select(StepResult)
                .where(StepResult.fingerprint == fingerprint, StepResult.user_id == user_id)
                .order_by(StepResult.id.desc())
            )
            return [
                CachedStep(
                    r.pipeline_id,
                    r.step,
                    r.run_index,
                    [StoredOutput.model_validate(o) for o in json.loads(r.outputs_json)],
                    from_micros(r.cost_micros),
                )
                for r in rows
                if r.pipeline_id in lineage or r.deterministic
            ]
