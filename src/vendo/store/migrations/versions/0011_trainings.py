"""Trainings: a trained version records its weights, and a training's job is queued
under a key of its own.

- versions.weights: what a runner of the version passes to ``setup(weights)`` as
  ``COG_WEIGHTS`` (the local path of the weights a training stored, or a URL); null for
  pushed versions.
- jobs.version_id widens from 64 to 128 characters: a training's job is queued under
  ``train:<trainer version id>`` (a runner in train mode serves that key), apart from
  the version's predictions.

Revision ID: 0011
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None

CLAIMED = sa.text("state = 'claimed'")


def _jobs_version_id(length: int) -> None:
    # SQLite alters a column by copying the table: the partial index is dropped first
    # and made again after, so its WHERE clause cannot be lost in the copy.
    op.drop_index("ix_jobs_claimed", table_name="jobs")
    op.drop_index("ix_jobs_claim", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column(
            "version_id",
            existing_type=sa.String(length=128 if length == 64 else 64),
            type_=sa.String(length=length),
            existing_nullable=False,
        )
    op.create_index("ix_jobs_claim", "jobs", ["version_id", "state", "id"], unique=False)
    op.create_index(
        "ix_jobs_claimed",
        "jobs",
        ["claimed_by"],
        unique=False,
        sqlite_where=CLAIMED,
        postgresql_where=CLAIMED,
    )


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights", sa.Text(), nullable=True))
    _jobs_version_id(128)


def downgrade() -> None:
    _jobs_version_id(64)
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("weights")
