"""In-memory state of the emulated WaveSpeed account: predictions, uploads, money, counters.

The server thread (requests, the clock task) and a test thread (``EmulatorServer`` admin helpers)
use it at once, so every method takes one re-entrant lock. Prediction status is computed lazily
from the clock: ``advance()`` replays, in time order, every start and finish event that is due,
honouring queue time, per-model latency and the concurrency limit, so the answer is the same
however often (or rarely) anybody asks.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from emulator.config import MUTABLE_FIELDS, EmulatorConfig
from emulator.faults import FaultBook, FaultRule
from emulator.records import (
    PredictionRecord,
    UploadRecord,
    admin_view,
    key_fingerprint,
    prediction_view,
)
from emulator.render import OutputPlan

STAT_NAMES = (
    "submit_requests",
    "predictions_created",
    "polls",
    "uploads",
    "history_requests",
    "balance_requests",
    "webhooks_sent",
)


class EmulatorState:
    """The whole emulated account, guarded by one lock."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self._lock = threading.RLock()
        self.config = config or EmulatorConfig()
        self.faults = FaultBook()
        self._listeners: list[Callable[[], None]] = []
        self._seq = itertools.count()
        self._clear()

    def _clear(self) -> None:
        self.balance: Decimal = self.config.balance_usd
        self._predictions: dict[str, PredictionRecord] = {}
        self._active: list[PredictionRecord] = []
        self._uploads: dict[str, UploadRecord] = {}
        self._outputs: dict[str, list[bytes]] = {}
        self._submit_times: deque[float] = deque()
        self._finished: deque[str] = deque()
        self._floor = 0.0
        self.stats: Counter[str] = Counter({name: 0 for name in STAT_NAMES})
        self.by_model: Counter[str] = Counter()

    # ------------------------------------------------------------------ admin

    def reset(self) -> None:
        """Forget predictions, uploads, counters and faults; restore the configured balance."""
        with self._lock:
            self.faults.clear()
            self._clear()

    def configure(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """Change run-time settings; a new ``balance_usd`` also becomes the current balance."""
        unknown = set(changes) - MUTABLE_FIELDS
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(MUTABLE_FIELDS))}"
            )
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            merged = {**self.config.model_dump(), **dict(changes)}
            self.config = EmulatorConfig(**merged)
            if "balance_usd" in changes:
                self.balance = self.config.balance_usd
            self._floor = max(self._floor, now)  # a new concurrency limit applies from now on
        self._notify()
        return self.config

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Called (from any thread) when something may have become due; wakes the clock."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except RuntimeError:  # the loop behind it is closed
                pass

    def count(self, stat: str, n: int = 1) -> None:
        with self._lock:
            self.stats[stat] += n

    def stats_view(self) -> dict[str, Any]:
        with self._lock:
            return {
                **{name: self.stats[name] for name in STAT_NAMES},
                "by_model": dict(self.by_model),
            }

    # ------------------------------------------------------------------ submits

    def rate_limited(self) -> float | None:
        """Seconds until another submit is allowed, or None when it is allowed now."""
        with self._lock:
            limit = self.config.submits_per_minute
            if limit <= 0:
                return None
            now = time.monotonic()
            while self._submit_times and now - self._submit_times[0] >= 60:
                self._submit_times.popleft()
            if len(self._submit_times) < limit:
                return None
            return max(0.001, 60 - (now - self._submit_times[0]))

    def can_pay(self, price: Decimal) -> bool:
        with self._lock:
            return self.balance >= price

    def create_prediction(
        self,
        *,
        model: str,
        body: dict[str, Any],
        plan: OutputPlan,
        price: Decimal,
        base_url: str,
        webhook_url: str | None,
        base64_output: bool,
        outcome: tuple[str, int | None, str] | None,
        faults: Iterable[FaultRule],
        api_key: str,
        client: Mapping[str, str],
    ) -> PredictionRecord:
        """Record a new prediction in ``created``; it runs on the emulated clock from now on."""
        faults = list(faults)
        for rule in faults:
            if rule.kind == "fail_prediction":
                outcome = ("failed", rule.code, rule.task_message())
            elif rule.kind == "timeout_prediction":
                outcome = ("timeout", 5004, rule.message or "Task timeout by server")
            elif rule.kind == "cancel_prediction":
                outcome = ("cancelled", None, rule.message or "Task cancelled by server")
        with self._lock:
            now = time.monotonic()
            record = PredictionRecord(
                id=secrets.token_hex(16),
                seq=next(self._seq),
                model=model,
                input=dict(body),
                plan=plan,
                price=price,
                base_url=base_url.rstrip("/"),
                created_ns=time.time_ns(),
                created_mono=now,
                ready_at=now + self.config.queue_seconds,
                webhook_url=webhook_url,
                base64_output=base64_output,
                outcome=outcome,
                expire_outputs=any(r.kind == "expire_outputs" for r in faults),
                webhook_faults=[r for r in faults if r.kind.startswith("webhook_")],
                faults=[r.kind for r in faults],
                api_key_fingerprint=key_fingerprint(api_key),
                client=dict(client),
            )
            record.move("created", now)
            self._predictions[record.id] = record
            self._active.append(record)
            self._submit_times.append(now)
            self.stats["predictions_created"] += 1
            self.by_model[model] += 1
        self._notify()
        return record

    # ------------------------------------------------------------------ the clock

    def advance(self) -> float | None:
        """Apply every due start/finish; return the monotonic time of the next event, if any."""
        with self._lock:
            return self._advance(time.monotonic())

    def _advance(self, now: float) -> float | None:
        limit = self.config.max_concurrency
        while self._active:
            running = [(r.finish_at, r.seq, r) for r in self._active if r.finish_at is not None]
            waiting = [r for r in self._active if r.started_at is None]
            t_finish, _, finishing = min(running) if running else (math.inf, -1, None)
            starting = None
            t_start = math.inf
            if waiting and (limit == 0 or len(running) < limit):
                starting = min(waiting, key=lambda r: (r.ready_at, r.seq))
                t_start = max(starting.ready_at, self._floor)
            t = min(t_finish, t_start)
            if t > now:
                return t if math.isfinite(t) else None
            self._floor = max(self._floor, t)
            if finishing is not None and t_finish <= t_start:
                self._finish(finishing, t)
            elif starting is not None:
                starting.started_at = t
                starting.finish_at = t + self.config.latency_for(starting.model)
                starting.move("processing", t)
        return None

    def _finish(self, record: PredictionRecord, at: float) -> None:
        status, code, error = record.outcome or ("completed", None, "")
        record.code, record.error, record.ended_at = code, error, at
        record.move(status, at)
        self._active.remove(record)
        if status == "completed" or (status == "failed" and self.config.bill_failed):
            self.balance -= record.price
            record.billed = record.price
        self._finished.append(record.id)
        self._notify()  # only schedules a wake-up on the loop; safe under the lock

    def pop_finished(self) -> list[PredictionRecord]:
        """Predictions that reached a terminal status since the last call (for webhooks, renders)."""
        with self._lock:
            done = [self._predictions[i] for i in self._finished if i in self._predictions]
            self._finished.clear()
            return done

    # ------------------------------------------------------------------ reads

    def _expired(self, created_ns: int) -> bool:
        return (time.time_ns() - created_ns) / 1e9 > self.config.retention_seconds

    def get(self, prediction_id: str, *, poll: bool = False) -> PredictionRecord | None:
        """The prediction, or None when unknown or past retention; ``poll`` counts a read on it."""
        with self._lock:
            self._advance(time.monotonic())
            record = self._predictions.get(prediction_id)
            if record is None or self._expired(record.created_ns):
                return None
            if poll:
                record.polls += 1
            return record

    def history(
        self,
        *,
        model: str | None = None,
        status: str | None = None,
        created_after_ns: int | None = None,
        created_before_ns: int | None = None,
    ) -> list[PredictionRecord]:
        """Live (not deleted, not expired) predictions matching the filters, newest first."""
        with self._lock:
            self._advance(time.monotonic())
            found = [
                r
                for r in self._predictions.values()
                if r.status != "deleted"
                and not self._expired(r.created_ns)
                and (model is None or r.model == model)
                and (status is None or r.status == status)
                and (created_after_ns is None or r.created_ns >= created_after_ns)
                and (created_before_ns is None or r.created_ns <= created_before_ns)
            ]
            return sorted(found, key=lambda r: (r.created_ns, r.seq), reverse=True)

    def records(self) -> list[PredictionRecord]:
        with self._lock:
            self._advance(time.monotonic())
            return list(self._predictions.values())

    def view(
        self,
        record: PredictionRecord,
        *,
        outputs: list[Any] | None = None,
        include_input: bool = True,
    ) -> dict[str, Any]:
        """The prediction object as the API shows it (see ``records.prediction_view``)."""
        with self._lock:
            return prediction_view(record, outputs=outputs, include_input=include_input)

    def admin_view(self, record: PredictionRecord) -> dict[str, Any]:
        """What a test may want to assert about a prediction (never the API key itself)."""
        with self._lock:
            return admin_view(record)

    # ------------------------------------------------------------------ outputs

    def outputs_available(self, record: PredictionRecord) -> bool:
        with self._lock:
            return (
                record.status == "completed"
                and not record.expire_outputs
                and not self._expired(record.created_ns)
                and self._predictions.get(record.id) is record
            )

    def cached_outputs(self, prediction_id: str) -> list[bytes] | None:
        with self._lock:
            return self._outputs.get(prediction_id)

    def store_outputs(self, prediction_id: str, files: list[bytes]) -> None:
        with self._lock:
            if prediction_id in self._predictions:
                self._outputs[prediction_id] = files

    # ------------------------------------------------------------------ deletes

    def delete(self, ids: Iterable[str]) -> int:
        """Mark predictions deleted (unknown ids are ignored); returns how many were deleted."""
        deleted = 0
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            for prediction_id in ids:
                record = self._predictions.get(prediction_id)
                if record is None or record.status == "deleted" or self._expired(record.created_ns):
                    continue
                if record in self._active:
                    self._active.remove(record)
                record.ended_at = record.ended_at or now
                record.move("deleted", now)
                self._outputs.pop(prediction_id, None)
                deleted += 1
            self._floor = max(self._floor, now)  # freed slots are usable from now on
        if deleted:
            self._notify()
        return deleted

    def record_delivery(self, prediction_id: str, delivery: dict[str, Any]) -> None:
        with self._lock:
            record = self._predictions.get(prediction_id)
            if record is not None:
                record.deliveries.append(delivery)

    # ------------------------------------------------------------------ uploads

    def create_upload(
        self, *, filename: str, media_type: str, kind: str, size: int, data: bytes | None
    ) -> UploadRecord:
        with self._lock:
            upload = UploadRecord(
                id=secrets.token_hex(16),
                filename=filename,
                media_type=media_type,
                kind=kind,
                declared_size=size,
                created_ns=time.time_ns(),
                data=data,
            )
            self._uploads[upload.id] = upload
            self.stats["uploads"] += 1
            return upload

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or self._expired(upload.created_ns):
                return None
            return upload

    def put_upload(self, upload_id: str, data: bytes) -> bool:
        with self._lock:
            upload = self.get_upload(upload_id)
            if upload is None:
                return False
            upload.data = data
            return True
