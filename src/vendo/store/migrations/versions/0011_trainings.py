"""Trainings: a trained version records its weights.

- versions.weights: what a runner of the version passes to ``setup(weights)`` as
  ``COG_WEIGHTS`` (the local path of the weights a training stored, or a URL); null for
  pushed versions.

A training's job waits in a pool of its own (``jobs.pool`` = ``train:<trainer version
id>``, see 0010), apart from the version's predictions: no change to ``jobs``.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("weights")
