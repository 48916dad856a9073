"""Add job state, comparisons and waivers to gates; add policies, tokens, webhooks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("gates") as batch:
        batch.add_column(sa.Column("request", JsonType, nullable=True))
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("policy_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("comparison", JsonType, nullable=True))
        batch.add_column(sa.Column("waiver", JsonType, nullable=True))
        batch.add_column(sa.Column("waived_until", Timestamp, nullable=True))
        batch.add_column(sa.Column("progress", JsonType, nullable=True))
        batch.add_column(sa.Column("started_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("finished_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("deadline_at", Timestamp, nullable=True))
        batch.create_unique_constraint(
            "uq_gates_idempotency", ["project", "idempotency_key"]
        )
    op.create_index(
        "ix_gates_project_commit_kind", "gates", ["project", "commit", "kind"]
    )
    op.create_index("ix_gates_status_seq", "gates", ["status", "seq"])
    _create_policies_and_tokens()
    _create_webhooks()


def _create_policies_and_tokens() -> None:
    op.create_table(
        "project_policies",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("policy", JsonType, nullable=False),
        sa.Column("locked", JsonType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", JsonType, nullable=False),
        sa.Column("projects", JsonType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
    )


def _create_webhooks() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("projects", JsonType, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "webhook_id", sa.String(32), sa.ForeignKey("webhooks.id"), nullable=False
        ),
        sa.Column("gate_id", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id"]
    )
    op.create_index("ix_webhook_deliveries_gate_id", "webhook_deliveries", ["gate_id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("api_tokens")
    op.drop_table("project_policies")
    op.drop_index("ix_gates_status_seq", table_name="gates")
    op.drop_index("ix_gates_project_commit_kind", table_name="gates")
    with op.batch_alter_table("gates") as batch:
        batch.drop_constraint("uq_gates_idempotency", type_="unique")
        for column in (
            "deadline_at",
            "finished_at",
            "started_at",
            "progress",
            "waived_until",
            "waiver",
            "comparison",
            "policy_version",
            "idempotency_key",
            "fingerprint",
            "request",
        ):
            batch.drop_column(column)
