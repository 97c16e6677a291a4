"""predictions.webhook_done: the ``completed`` webhook of a prediction is in the
outbox's hands (or was not wanted). Terminal predictions with a webhook and no mark are
owed one: a server that stopped before handing it over (or that marked a running
prediction interrupted at restart) sends it at start-up. A partial index keeps the
owed ones, and only those, at hand.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OWED = sa.text("webhook IS NOT NULL AND webhook_done = false")


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("webhook_done", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # what was created before this column knew nothing of it: count it as handed over
    op.execute("UPDATE predictions SET webhook_done = true WHERE webhook IS NOT NULL")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_predictions_webhook_owed",
            ["id"],
            unique=False,
            sqlite_where=OWED,
            postgresql_where=OWED,
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_webhook_owed")
        batch_op.drop_column("webhook_done")
