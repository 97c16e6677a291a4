"""Agents (scaled mode): the processes that run models for the shared queue.

- agents: one row per live agent (``vendo agent``), by name: the SKUs it serves, its
  capacity (cores, memory, GPUs), when it started and its last heartbeat. A process
  that finds an agent's heartbeat older than the timeout deletes the row and recovers
  the agent's claimed jobs (docs/scaled-mode.md, "Faults").
- jobs.cancel_requested: the reason of a cancel asked for a claimed job, for the
  process running it to find in the database when the relayed cancel did not reach it
  (its ``LISTEN`` connection was down).
- instance_usage.instance_id: 400 characters (``<pool key>#<n>``; a version pool's key
  alone is 72, and PostgreSQL refused the usage rows of its instances).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("hardware", _JSON, nullable=False),
        sa.Column("capacity", _JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested", sa.String(64), nullable=True))
    with op.batch_alter_table("instance_usage", schema=None) as batch_op:
        batch_op.alter_column(
            "instance_id",
            existing_type=sa.String(64),
            type_=sa.String(400),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("instance_usage", schema=None) as batch_op:
        batch_op.alter_column(
            "instance_id",
            existing_type=sa.String(400),
            type_=sa.String(64),
            existing_nullable=False,
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
    op.drop_table("agents")
