"""reconciliation: cumulative drift, flag reasons and unmatched predictions per window

Windows reconciled before this revision start the running total at zero.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reconciliations") as batch:
        batch.add_column(
            sa.Column(
                "cumulative_drift_micros", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        batch.add_column(
            sa.Column(
                "cumulative_spent_micros", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        batch.add_column(sa.Column("flags", sa.Text(), nullable=True))
        batch.add_column(sa.Column("unmatched_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reconciliations") as batch:
        batch.drop_column("unmatched_json")
        batch.drop_column("flags")
        batch.drop_column("cumulative_spent_micros")
        batch.drop_column("cumulative_drift_micros")
