"""Paid submissions (intent before the POST, prediction id after) and cached input uploads.

The submit activity's guarantee against paying twice rests on this table: a retry that finds an
intent without a prediction id reconciles instead of sending the POST again, and the unique
prediction id means no two submissions can claim the same prediction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.errors import OwnershipConflictError
from ledger.db import reading
from ledger.rows import insert_ignore
from ledger.schema import MediaUpload, SubmissionRecord
from ledger.values import utcnow


@dataclass(frozen=True)
class SubmissionState:
    submission_id: str
    state: str
    """intent (a POST may be in flight or ambiguous) | clear (nothing was created) | accepted."""
    prediction_id: str | None
    intent_at: datetime
    attempts: int
    body: dict[str, Any]
    model_path: str = ""


class SubmissionBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def begin_submission(
        self,
        *,
        submission_id: str,
        operation_id: str,
        user_id: str,
        model_path: str,
        body: dict[str, Any],
        now: datetime | None = None,
    ) -> SubmissionState:
        """Count the attempt and return what was known before it.

        If nothing was outstanding (``clear``), the intent is recorded in the same transaction:
        from here until an answer arrives, the outcome of the POST is unknown.
        """
        now = now or utcnow()
        body_json = json.dumps(body, sort_keys=True, separators=(",", ":"))
        body_sha = hashlib.sha256(body_json.encode()).hexdigest()
        with Session(self.engine) as s, s.begin():
            insert_ignore(
                s,
                SubmissionRecord,
                {
                    "submission_id": submission_id,
                    "operation_id": operation_id,
                    "user_id": user_id,
                    "model_path": model_path,
                    "body_sha256": body_sha,
                    "body_json": body_json,
                    "state": "clear",
                    "prediction_id": None,
                    "attempts": 0,
                    "intent_at": now,
                    "accepted_at": None,
                    "reconciled": 0,
                },
            )
            rec = s.get(
                SubmissionRecord, submission_id, populate_existing=True, with_for_update=True
            )
            assert rec is not None
            mine = (operation_id, user_id, model_path, body_sha)
            if (rec.operation_id, rec.user_id, rec.model_path, rec.body_sha256) != mine:
                # Another user's or another request's submission: its prediction is not ours.
                raise OwnershipConflictError(
                    f"submission {submission_id} was recorded for another "
                    f"{'user' if rec.user_id != user_id else 'request'}; its prediction is "
                    "never reused"
                )
            rec.attempts += 1
            before = _submission_state(rec)
            if rec.state == "clear":
                rec.state = "intent"
                rec.intent_at = now
            return before

    def mark_submit_intent(self, submission_id: str, now: datetime | None = None) -> None:
        """Just before the POST: from here until an answer, the outcome is unknown."""
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(SubmissionRecord)
                .where(
                    SubmissionRecord.submission_id == submission_id,
                    SubmissionRecord.state != "accepted",
                )
                .values(state="intent", intent_at=now or utcnow())
            )

    def mark_submit_clear(self, submission_id: str) -> None:
        """The POST provably created nothing (refused, rate limited, never connected)."""
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(SubmissionRecord)
                .where(
                    SubmissionRecord.submission_id == submission_id,
                    SubmissionRecord.state == "intent",
                )
                .values(state="clear")
            )

    def accept_submission(
        self,
        submission_id: str,
        prediction_id: str,
        *,
        reconciled: bool = False,
        now: datetime | None = None,
    ) -> bool:
        """Bind the prediction to this submission; False if another submission already owns it."""
        try:
            with Session(self.engine) as s, s.begin():
                rec = s.get(SubmissionRecord, submission_id, with_for_update=True)
                assert rec is not None
                if rec.prediction_id is not None:
                    return rec.prediction_id == prediction_id
                rec.prediction_id = prediction_id
                rec.state = "accepted"
                rec.accepted_at = now or utcnow()
                rec.reconciled = int(reconciled)
            return True
        except IntegrityError:
            return False

    def submission(self, submission_id: str) -> SubmissionState | None:
        with Session(reading(self.engine)) as s:
            rec = s.get(SubmissionRecord, submission_id)
            return _submission_state(rec) if rec else None

    def claimed_predictions(self, prediction_ids: Iterable[str]) -> set[str]:
        ids = list(prediction_ids)
        if not ids:
            return set()
        with Session(reading(self.engine)) as s:
            return set(
                s.scalars(
                    select(SubmissionRecord.prediction_id).where(
                        SubmissionRecord.prediction_id.in_(ids)
                    )
                )
            )

    def submissions_for(self, operation_id: str) -> list[SubmissionState]:
        with Session(reading(self.engine)) as s:
            rows = s.scalars(
                select(SubmissionRecord)
                .where(SubmissionRecord.operation_id == operation_id)
                .order_by(SubmissionRecord.submission_id)
            )
            return [_submission_state(r) for r in rows]

    def prediction_owner(self, prediction_id: str) -> tuple[str, str] | None:
        """(operation id = workflow id, user id) of a prediction: where a webhook is delivered."""
        with Session(reading(self.engine)) as s:
            row = s.execute(
                select(SubmissionRecord.operation_id, SubmissionRecord.user_id).where(
                    SubmissionRecord.prediction_id == prediction_id
                )
            ).first()
            return (row[0], row[1]) if row else None


class UploadCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cached_upload(self, sha256: str, provider_url: str, *, max_age: timedelta) -> str | None:
        with Session(reading(self.engine)) as s:
            row = s.get(MediaUpload, (sha256, provider_url))
            if row is None:
                return None
            uploaded = (
                row.uploaded_at if row.uploaded_at.tzinfo else row.uploaded_at.replace(tzinfo=UTC)
            )
            return row.download_url if utcnow() - uploaded < max_age else None

    def remember_upload(self, sha256: str, provider_url: str, download_url: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(MediaUpload, (sha256, provider_url)) or MediaUpload(
                sha256=sha256, provider_url=provider_url
            )
            row.download_url = download_url
            row.uploaded_at = utcnow()
            s.add(row)


def _submission_state(rec: SubmissionRecord) -> SubmissionState:
    intent_at = rec.intent_at if rec.intent_at.tzinfo else rec.intent_at.replace(tzinfo=UTC)
    return SubmissionState(
        submission_id=rec.submission_id,
        state=rec.state,
        prediction_id=rec.prediction_id,
        intent_at=intent_at,
        attempts=rec.attempts,
        body=json.loads(rec.body_json),
        model_path=rec.model_path,
    )
