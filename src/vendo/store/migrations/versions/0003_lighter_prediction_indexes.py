"""Fewer index writes per prediction: drop ix_predictions_version_id (no query uses
it); ix_predictions_status becomes ix_predictions_unfinished, a partial index of the
predictions still starting or processing (the only ones its queries look for), so a
prediction written once, finished, touches two indexes fewer.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNFINISHED = sa.text("status IN ('starting', 'processing')")


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_version_id")
        batch_op.drop_index("ix_predictions_status")
        batch_op.create_index(
            "ix_predictions_unfinished",
            ["status"],
            unique=False,
            sqlite_where=UNFINISHED,
            postgresql_where=UNFINISHED,
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_unfinished")
        batch_op.create_index("ix_predictions_status", ["status"], unique=False)
        batch_op.create_index("ix_predictions_version_id", ["version_id"], unique=False)
