"""versions.digest and builds: a version id is unique to its model, and a model
records its pushes.

Version ids used to be the package's bare content digest, so one package could be a
version of one model only. New versions are named by a hash of the model and the
digest; the digest itself moves to its own column, unique per model, which is what a
repeated push of the same package finds. Existing versions keep their ids (predictions,
deployments and users' scripts name them); since their id *was* their digest, the
column is filled from it, and pushing the same package to the same model again still
answers that version.

``builds`` holds each accepted push: building, then failed (reason and log) or
succeeded, so a model whose build failed can say so.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    op.execute("UPDATE versions SET digest = id")
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index("ux_versions_model_digest", ["model_id", "digest"], unique=True)

    op.create_table(
        "builds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=False),
        sa.Column("builder", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.create_index("ix_builds_model_created", ["model_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_builds_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("builds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_builds_version_id"))
        batch_op.drop_index("ix_builds_model_created")
    op.drop_table("builds")
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index("ux_versions_model_digest")
        batch_op.drop_column("digest")
