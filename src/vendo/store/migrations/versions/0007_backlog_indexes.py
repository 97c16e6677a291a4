"""Periodic queries and start-up recovery that cost nothing per queued prediction.

- ix_predictions_deadline: predictions with a deadline not yet completed, by deadline.
  The deadline sweep (twice a second) reads those past it instead of every unfinished
  prediction.
- ix_jobs_claimed: the claimed jobs, by worker. Start-up recovery reads those instead
  of every job.
- ix_predictions_webhook_owed now holds finished predictions only: a queued prediction
  with a webhook is no longer in it, so the start-up read of owed webhooks stays small
  however many are queued.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DEADLINE_PENDING = sa.text("deadline IS NOT NULL AND completed_at IS NULL")
CLAIMED = sa.text("state = 'claimed'")
OWED_BEFORE = sa.text("webhook IS NOT NULL AND webhook_done = false")
OWED = sa.text(
    "webhook IS NOT NULL AND webhook_done = false AND status IN ('succeeded', 'failed', 'canceled')"
)


def _owed_index(batch_op: object, where: sa.TextClause) -> None:
    batch_op.create_index(  # type: ignore[attr-defined]
        "ix_predictions_webhook_owed",
        ["id"],
        unique=False,
        sqlite_where=where,
        postgresql_where=where,
    )


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_predictions_deadline",
            ["deadline"],
            unique=False,
            sqlite_where=DEADLINE_PENDING,
            postgresql_where=DEADLINE_PENDING,
        )
        batch_op.drop_index("ix_predictions_webhook_owed")
        _owed_index(batch_op, OWED)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_claimed",
            ["claimed_by"],
            unique=False,
            sqlite_where=CLAIMED,
            postgresql_where=CLAIMED,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claimed")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_webhook_owed")
        _owed_index(batch_op, OWED_BEFORE)
        batch_op.drop_index("ix_predictions_deadline")
