"""Every provider cost knows its provider, read from what the ledger holds durably: the
prediction's submission record (``{provider}:{path}`` for every provider but WaveSpeed). Legacy
rows are attributed by the migration the same way. On SQLite and PostgreSQL (``ledger_url``)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from ledger.audit import verify
from ledger.db import create_ledger_engine, ensure_schema, upgrade
from ledger.schema import Reconciliation, UsageEvent
from ledger.service import Ledger
from ledger.submissions import SubmissionBook
from ledger.values import path_provider, submission_path

PRICE = Decimal("0.04")
SHA = hashlib.sha256(b"image").hexdigest()


def hold(ledger: Ledger, units: int = 1) -> str:
    op = f"op-{uuid.uuid4().hex[:8]}"
    ledger.assign_plan("u-prov", "enterprise")
    ledger.reserve(
        reservation_id=f"res:{op}",
        operation_id=op,
        user_id="u-prov",
        category="images",
        units=units,
        unit_price=PRICE,
        model_id="qwen-image",
        operation="text_to_image",
    )
    return op


def submitted(ledger: Ledger, op: str, provider: str, path: str, prediction: str | None) -> str:
    """A submission record as the submit/inline activities write it; its id."""
    book = SubmissionBook(ledger.engine)
    sub = f"{op}/{provider}/{uuid.uuid4().hex[:6]}"
    book.begin_submission(
        submission_id=sub,
        operation_id=op,
        user_id="u-prov",
        model_path=submission_path(provider, path),
        body={"prompt": "p"},
    )
    if prediction is not None:
        assert book.accept_submission(sub, prediction)
    return sub


def providers_by_prediction(ledger: Ledger) -> dict[str, str | None]:
    with Session(ledger.engine) as s:
        rows = s.execute(
            select(UsageEvent.prediction_id, UsageEvent.provider).where(
                UsageEvent.kind == "provider_cost"
            )
        )
        return {p: provider for p, provider in rows if p}


def test_submission_paths_name_their_provider_and_wavespeed_keeps_bare_paths() -> None:
    assert submission_path("wavespeed", "wavespeed-ai/qwen-image") == "wavespeed-ai/qwen-image"
    assert submission_path("stability", "stable-image/upscale/creative") == (
        "stability:stable-image/upscale/creative"
    )
    assert path_provider("wavespeed-ai/qwen-image") == "wavespeed"
    assert path_provider("gemini:imagen-4.0-generate-001") == "gemini"


def test_each_provider_cost_is_attributed_from_the_submission_record(ledger: Ledger) -> None:
    op = hold(ledger, units=3)
    submitted(ledger, op, "wavespeed", "wavespeed-ai/qwen-image/text-to-image", "ws-1")
    submitted(ledger, op, "stability", "stable-image/upscale/creative", "b" * 64)
    inline = f"huggingface-{SHA}-{'c' * 16}"
    submitted(ledger, op, "huggingface", "black-forest-labs/FLUX.1-schnell", inline)
    ledger.settle(
        operation_id=op, units_charged=3, delivered_predictions=["ws-1", "b" * 64, inline]
    )
    lost = hold(ledger)
    sent = submitted(ledger, lost, "gemini", "imagen-4.0-generate-001", None)
    ledger.record_provider_cost(
        operation_id=lost, prediction_id=f"unanswered:{sent}", amount=PRICE, note="no answer"
    )
    long_op = hold(ledger)
    long_sub = submitted(ledger, long_op, "stability", "stable-image/generate/ultra", None)
    long_sub_id = long_sub + "x" * (200 - len(long_sub))
    SubmissionBook(ledger.engine).begin_submission(
        submission_id=long_sub_id,
        operation_id=long_op,
        user_id="u-prov",
        model_path="stability:stable-image/generate/ultra",
        body={"prompt": "p"},
    )
    cut = f"unanswered:{long_sub_id}"[:120]
    ledger.record_provider_cost(operation_id=long_op, prediction_id=cut, amount=PRICE, note="cut")
    ledger.record_provider_cost(
        operation_id=lost, prediction_id="no-record", amount=PRICE, note="legacy caller"
    )

    assert providers_by_prediction(ledger) == {
        "ws-1": "wavespeed",
        "b" * 64: "stability",
        inline: "huggingface",
        f"unanswered:{sent}": "gemini",
        cut: "stability",
        "no-record": "wavespeed",
    }
    assert verify(ledger.engine) == []


def test_the_migration_attributes_legacy_provider_costs(ledger_url: str) -> None:
    engine = create_ledger_engine(ledger_url)
    upgrade(engine, "0006")  # a database of the previous release, with every kind of cost
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    inline = f"gemini-{SHA}-{'d' * 16}"
    submissions = [  # (submission, model_path as recorded then, prediction id)
        ("s-ws", "wavespeed-ai/qwen-image/text-to-image", "ws-legacy"),
        ("s-st", "stable-image/upscale/creative", "e" * 64),
        ("s-hf", "huggingface:black-forest-labs/FLUX.1-schnell", None),
    ]
    costs = ["ws-legacy", "e" * 64, "unanswered:s-hf", inline, "orphan"]
    with engine.begin() as conn:
        for sub, path, prediction in submissions:
            conn.execute(
                text(
                    "INSERT INTO submissions (submission_id, operation_id, user_id, model_path, "
                    "body_sha256, body_json, state, prediction_id, attempts, intent_at, "
                    "accepted_at, reconciled) VALUES (:sub, 'op-old', 'old-user', :path, 'x', "
                    "'{}', :state, :prediction, 1, :now, NULL, 0)"
                ),
                {
                    "sub": sub,
                    "path": path,
                    "prediction": prediction,
                    "state": "accepted" if prediction else "intent",
                    "now": now,
                },
            )
        for prediction in costs:
            conn.execute(
                text(
                    "INSERT INTO usage_events (idempotency_key, kind, user_id, period, units, "
                    "amount_micros, prediction_id, created_at) VALUES (:key, 'provider_cost', "
                    "'old-user', '2026-12', 1, 40000, :prediction, :now)"
                ),
                {"key": f"provider_cost:{prediction}", "prediction": prediction, "now": now},
            )
        conn.execute(
            text(
                "INSERT INTO usage_events (idempotency_key, kind, user_id, period, units, "
                "amount_micros, created_at) VALUES ('reserve:op-old', 'reserve', 'old-user', "
                "'2026-12', 1, 40000, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO reconciliations (provider_url, window_start, window_end, "
                "balance_spent_micros, ledger_cost_micros, drift_micros, flagged, created_at) "
                "VALUES ('https://api.wavespeed.ai', :now, :now, 0, 0, 0, 0, :now)"
            ),
            {"now": now},
        )

    ensure_schema(engine, auto_migrate=True)

    with Session(engine) as s:
        rows = s.execute(select(UsageEvent.prediction_id, UsageEvent.provider))
        attributed = {prediction: provider for prediction, provider in rows}
        reserve = s.scalar(select(UsageEvent.provider).where(UsageEvent.kind == "reserve"))
        reconciled = s.scalars(select(Reconciliation.provider)).all()
        stability_path = s.scalar(
            text("SELECT model_path FROM submissions WHERE submission_id = 's-st'")
        )
    assert attributed == {
        "ws-legacy": "wavespeed",
        "e" * 64: "stability",
        "unanswered:s-hf": "huggingface",
        inline: "gemini",
        "orphan": "wavespeed",
        None: None,
    }, "the reserve event (prediction None) is no provider cost and names none"
    assert reserve is None
    assert reconciled == ["wavespeed"], "reconciliations so far compared WaveSpeed's balance"
    assert stability_path == "stability:stable-image/upscale/creative"
    engine.dispose()
