"""provider per cost: usage events and reconciliations name their provider

Provider costs recorded before this revision are attributed from what the ledger already knew:
the submission record of the prediction (``model_path`` is ``{provider}:{path}`` for inline
calls), an inline prediction id (``{provider}-{sha}-{digest}``), else WaveSpeed (the only
provider before issue 14). Stability's asynchronous jobs were recorded with the bare path
(``stable-image/...``); their submissions get the ``stability:`` prefix every non-WaveSpeed
submission now carries. Reconciliations so far compared WaveSpeed's balance.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OTHERS = ("stability", "huggingface", "gemini")


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
    with op.batch_alter_table("reconciliations") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE submissions SET model_path = 'stability:' || model_path "
        "WHERE model_path LIKE 'stable-image/%'"
    )
    for name in OTHERS:
        op.execute(
            sa.text(
                "UPDATE usage_events SET provider = :name WHERE kind = 'provider_cost' "
                "AND provider IS NULL AND (prediction_id LIKE :inline OR EXISTS ("
                "SELECT 1 FROM submissions s WHERE s.model_path LIKE :prefix AND ("
                "s.prediction_id = usage_events.prediction_id OR "
                "substr('unanswered:' || s.submission_id, 1, 120) = usage_events.prediction_id)))"
            ).bindparams(name=name, inline=f"{name}-%", prefix=f"{name}:%")
        )
    op.execute(
        "UPDATE usage_events SET provider = 'wavespeed' "
        "WHERE kind = 'provider_cost' AND provider IS NULL"
    )
    op.execute("UPDATE reconciliations SET provider = 'wavespeed' WHERE provider IS NULL")


def downgrade() -> None:
    op.execute(
        "UPDATE submissions SET model_path = substr(model_path, 11) "
        "WHERE model_path LIKE 'stability:stable-image/%'"
    )
    with op.batch_alter_table("reconciliations") as batch:
        batch.drop_column("provider")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("provider")
