"""Create the gates and artifacts tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gates",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("commit", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", JsonType, nullable=False),
        sa.Column("metrics", JsonType, nullable=False),
        sa.Column("checks", JsonType, nullable=False),
        sa.Column("details", JsonType, nullable=False),
        sa.Column("artifacts", JsonType, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_gates_project_seq", "gates", ["project", "seq"])
    op.create_index(
        "ix_gates_project_branch_kind_seq",
        "gates",
        ["project", "branch", "kind", "seq"],
    )
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
    op.drop_index("ix_gates_project_branch_kind_seq", table_name="gates")
    op.drop_index("ix_gates_project_seq", table_name="gates")
    op.drop_table("gates")
