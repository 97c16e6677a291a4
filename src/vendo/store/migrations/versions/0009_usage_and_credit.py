"""instance_usage and credits: metering of runner instances, and credit per account.

``instance_usage`` holds the seconds each runner instance spent setting up, idle and
active (a row per instance and state every few seconds); ``credits`` an account's
credit as of when it was set. The cost of usage is worked out when it is read
(vendo.store.usage), from the hardware catalogue's prices.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("pool", sa.String(length=400), nullable=False),
        sa.Column("hardware", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=300), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("deployment", sa.String(length=300), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instance_usage", schema=None) as batch_op:
        batch_op.create_index(
            "ix_instance_usage_owner_started", ["owner_id", "started_at"], unique=False
        )
    op.create_table(
        "credits",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=6), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )


def downgrade() -> None:
    op.drop_table("credits")
    with op.batch_alter_table("instance_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_instance_usage_owner_started")
    op.drop_table("instance_usage")
