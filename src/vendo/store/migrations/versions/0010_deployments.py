"""Deployments: their releases, and a queue per pool.

- deployments: a name under an owner.
- deployment_releases: one row per change of a deployment (number 1, 2, ...); the
  newest is the current release, the others its history.
- jobs.pool: the queue a job waits in (``version:<id>``, the version's shared pool, or
  ``deployment:<owner>/<name>``). ix_jobs_claim becomes (pool, state, id): a pool claims
  its own jobs, so a deployment's never wait behind the shared pool's, or the reverse.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "name", name="uq_deployments_owner_name"),
    )
    op.create_table(
        "deployment_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("hardware", sa.String(length=64), nullable=False),
        sa.Column("min_instances", sa.Integer(), nullable=False),
        sa.Column("max_instances", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("deployment_id", "number", name="uq_deployment_releases_number"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool", sa.String(length=320), nullable=True))
    # Jobs queued before this migration wait in their version's shared pool.
    op.execute(sa.text("UPDATE jobs SET pool = 'version:' || version_id"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("pool", existing_type=sa.String(length=320), nullable=False)
        batch_op.drop_index("ix_jobs_claim")
        batch_op.create_index("ix_jobs_claim", ["pool", "state", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_claim")
        batch_op.create_index("ix_jobs_claim", ["version_id", "state", "id"], unique=False)
        batch_op.drop_column("pool")
    op.drop_table("deployment_releases")
    op.drop_table("deployments")
