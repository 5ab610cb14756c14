"""The durable record of every run: who started it, with which key and request, and how it ended.

Temporal forgets a closed run after its namespace's retention; this table does not. The faces
write a row before they start a workflow (claiming the caller's idempotency key for that request)
and an activity fills in the ending, so status, outputs and cost can still be served, and a key
still answers with its run (or a 409 for another request), long after the history is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from contracts.errors import IdempotencyKeyReusedError
from ledger.db import reading
from ledger.rows import insert_ignore
from ledger.schema import RunRecord
from ledger.values import from_micros, to_micros, utcnow

ENDED = ("completed", "failed", "cancelled", "terminated", "timed_out")


@dataclass(frozen=True)
class RunInfo:
    """One run as the database remembers it."""

    id: str
    user_id: str
    kind: str
    operation: str
    idempotency_key: str | None
    fingerprint: str
    status: str
    result: dict[str, Any] | None
    cost_usd: Decimal
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def ended(self) -> bool:
        """True once the run's ending was recorded."""
        return self.status in ENDED


def _info(row: RunRecord) -> RunInfo:
    return RunInfo(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        operation=row.operation,
        idempotency_key=row.idempotency_key,
        fingerprint=row.fingerprint,
        status=row.status,
        result=json.loads(row.result_json) if row.result_json else None,
        cost_usd=from_micros(row.cost_micros),
        error=json.loads(row.error_json) if row.error_json else None,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


class RunRecords:
    """Claim, find and finish run records (one engine, short transactions)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, run_id: str) -> RunInfo | None:
        """The record of ``run_id``, if one was written."""
        with Session(reading(self.engine)) as s:
            row = s.get(RunRecord, run_id)
            return _info(row) if row is not None else None

    def find_key(self, user_id: str, key: str) -> RunInfo | None:
        """The run ``user_id`` started with idempotency key ``key``, if any."""
        with Session(reading(self.engine)) as s:
            row = s.scalar(
                select(RunRecord).where(
                    RunRecord.user_id == user_id, RunRecord.idempotency_key == key
                )
            )
            return _info(row) if row is not None else None

    def page(
        self,
        user_id: str,
        *,
        kind: str | None = None,
        statuses: tuple[str, ...] = (),
        operation: str | None = None,
        since: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 20,
    ) -> list[RunInfo]:
        """``user_id``'s runs, newest first (by start, then id), at most ``limit``.

        ``after`` is the (created_at, id) of the last run of the previous page: keyset paging, so
        runs started since then do not shift the pages that follow.
        """
        query = select(RunRecord).where(RunRecord.user_id == user_id)
        if kind:
            query = query.where(RunRecord.kind == kind)
        if statuses:
            query = query.where(RunRecord.status.in_(statuses))
        if operation:
            query = query.where(RunRecord.operation == operation)
        if since is not None:
            query = query.where(RunRecord.created_at >= since)
        if after is not None:
            created, run_id = after
            query = query.where(
                or_(
                    RunRecord.created_at < created,
                    and_(RunRecord.created_at == created, RunRecord.id < run_id),
                )
            )
        query = query.order_by(RunRecord.created_at.desc(), RunRecord.id.desc()).limit(limit)
        with Session(reading(self.engine)) as s:
            return [_info(row) for row in s.scalars(query)]

    def check(
        self, *, run_id: str, user_id: str, kind: str, key: str | None, fingerprint: str
    ) -> RunInfo | None:
        """The existing record this request may answer with; raises if it is another request's."""
        found = self.find(run_id) or (self.find_key(user_id, key) if key else None)
        if found is not None:
            _same_request(found, run_id, user_id, kind, fingerprint)
        return found

    def claim(
        self,
        *,
        run_id: str,
        user_id: str,
        kind: str,
        operation: str,
        key: str | None,
        fingerprint: str,
        now: datetime | None = None,
    ) -> RunInfo:
        """Write the start of a run, or return the same request's earlier record.

        Raises:
            IdempotencyKeyReusedError: the id or the user's key belongs to another request.
        """
        with Session(self.engine) as s, s.begin():
            insert_ignore(
                s,
                RunRecord,
                {
                    "id": run_id,
                    "user_id": user_id,
                    "kind": kind,
                    "operation": operation[:120],
                    "idempotency_key": key,
                    "fingerprint": fingerprint,
                    "status": "running",
                    "result_json": None,
                    "cost_micros": 0,
                    "error_json": None,
                    "created_at": now or utcnow(),
                    "finished_at": None,
                },
            )
        found = self.check(
            run_id=run_id, user_id=user_id, kind=kind, key=key, fingerprint=fingerprint
        )
        if found is None:  # pragma: no cover - the insert or a conflicting row is always there
            raise RuntimeError(f"run record {run_id} was neither written nor found")
        return found

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        result: dict[str, Any] | None = None,
        cost_usd: Decimal = Decimal(0),
        error: dict[str, Any] | None = None,
        now: datetime | None = None,
        user_id: str | None = None,
        kind: str = "operation",
        operation: str = "",
    ) -> bool:
        """Record how a run ended (idempotent: the first ending recorded stays).

        A run nobody claimed (a pipeline's step) gets its record here, when ``user_id`` is given.
        """
        ending = {
            "status": status,
            "result_json": json.dumps(result, sort_keys=True) if result else None,
            "cost_micros": to_micros(cost_usd),
            "error_json": json.dumps(error, sort_keys=True) if error else None,
            "finished_at": now or utcnow(),
        }
        with Session(self.engine) as s, s.begin():
            if user_id is not None:
                row = {
                    "id": run_id,
                    "user_id": user_id,
                    "kind": kind,
                    "operation": operation[:120],
                    "idempotency_key": None,
                    "fingerprint": "",
                    "created_at": ending["finished_at"],
                }
                if insert_ignore(s, RunRecord, {**row, **ending}):
                    return True
            changed = s.execute(
                update(RunRecord)
                .where(RunRecord.id == run_id, RunRecord.status.not_in(ENDED))
                .values(**ending)
            )
            return bool(getattr(changed, "rowcount", 0))


def _same_request(found: RunInfo, run_id: str, user_id: str, kind: str, fingerprint: str) -> None:
    if found.user_id != user_id or found.id != run_id:
        # Another user's run under this id, or this user's key on another run: never reuse.
        raise IdempotencyKeyReusedError(
            "this idempotency key already names another request", run_id=None
        )
    if found.kind != kind or found.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(
            f"idempotency key already used for a different request (run {run_id}); "
            "use a new key for a new request",
            run_id=run_id,
        )
