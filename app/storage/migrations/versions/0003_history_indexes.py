"""Add indexes for the history, trend, badge and baseline queries.

Each index ends with ``seq``, so a query that filters on its leading columns
reads the newest rows first and stops after one page, instead of sorting every
matching row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Name and columns of each index; the models declare the same ones.
INDEXES = (
    # History and trend of one branch of any kind, and its badge.
    ("ix_gates_project_branch_seq", ["project", "branch", "seq"]),
    # History of one kind of gate across branches.
    ("ix_gates_project_kind_seq", ["project", "kind", "seq"]),
    # A project's failed (or errored, or waived) results.
    ("ix_gates_project_status_seq", ["project", "status", "seq"]),
    # The last passing result of a project, branch and kind: the baseline of
    # every comparison, found without walking past failed runs.
    (
        "ix_gates_project_branch_kind_status_seq",
        ["project", "branch", "kind", "status", "seq"],
    ),
    # The results of one commit, whatever the project.
    ("ix_gates_commit_seq", ["commit", "seq"]),
    # `since` and `until` windows.
    ("ix_gates_created_at", ["created_at"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "gates", columns)


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name="gates")
