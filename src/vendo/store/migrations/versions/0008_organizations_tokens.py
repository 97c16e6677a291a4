"""Organizations and token management (#11).

- memberships: who belongs to which organization, with a role (owner | member).
- tokens.organization_id: a token scoped to one organization acts as it.
- tokens.revoked_at: a revoked token is kept (its id, name and times stay listable to
  the admin) but authenticates no more.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memberships",
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("organization_id", "user_id"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.add_column(sa.Column("organization_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(
            "fk_tokens_organization_id", "users", ["organization_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_tokens_user_id", ["user_id"])


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_index("ix_tokens_user_id")
        batch_op.drop_constraint("fk_tokens_organization_id", type_="foreignkey")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("organization_id")
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_table("memberships")
