"""ix_predictions_retention: predictions whose data is still kept, by completion time,
so that the retention sweep reads only those past the retention period instead of
scanning every prediction (and holding SQLite's write lock while it does).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEPT = sa.text("data_removed = false")


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_predictions_retention",
            ["completed_at"],
            unique=False,
            sqlite_where=KEPT,
            postgresql_where=KEPT,
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_retention")
