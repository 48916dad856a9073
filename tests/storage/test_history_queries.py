"""The history queries send one-row limits and, on SQLite, use the history indexes."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from app.config import Settings
from app.storage.db import Database
from app.storage.models import GateRecord
from app.storage.repository import GateFilter, GateRepository


@pytest.fixture
def database(database_url, tmp_path):
    database = Database(Settings(database_url=database_url, data_dir=tmp_path))
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def statements(database):
    sent = []

    def record(_conn, _cursor, statement, _parameters, _context, _many):
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    yield sent
    event.remove(database.engine, "before_cursor_execute", record)


def make_record(number, status="passed"):
    return GateRecord(
        id=f"{number:032x}",
        kind="model",
        status=status,
        project="shop",
        branch="main",
        commit=f"c{number}",
        created_at=datetime.now(UTC),
        policy={},
        metrics={},
        checks=[],
        details={},
        artifacts={},
    )


def add_records(database, statuses):
    with database.session() as session:
        for number, status in enumerate(statuses):
            GateRepository(session).add(make_record(number, status))


def selects_on_gates(statements):
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_latest_terminal_limits_to_one_row(database, statements):
    add_records(database, ["passed", "failed", "running"])
    statements.clear()
    with database.session() as session:
        record = GateRepository(session).latest_terminal(GateFilter(project="shop"))
        assert record is not None
        assert record.status == "failed"
    (select,) = selects_on_gates(statements)
    assert "LIMIT" in select.upper()


def test_last_before_limits_to_one_row(database, statements):
    add_records(database, ["passed", "failed", "failed"])
    with database.session() as session:
        newest = GateRepository(session).find(f"{2:032x}")
    statements.clear()
    with database.session() as session:
        baseline = GateRepository(session).last_before(
            newest, status="passed", same_commit=False
        )
        assert baseline is not None
        assert baseline.id == f"{0:032x}"
    (select,) = selects_on_gates(statements)
    assert "LIMIT" in select.upper()


PLANS = [
    (GateFilter(project="shop", branch="main"), "ix_gates_project_branch_seq"),
    (GateFilter(project="shop", kind="model"), "ix_gates_project_kind_seq"),
    (GateFilter(project="shop", status="failed"), "ix_gates_project_status_seq"),
    (GateFilter(commit="c1"), "ix_gates_commit_seq"),
    (GateFilter(status="failed"), "ix_gates_status_seq"),
    (
        GateFilter(project="shop", branch="main", kind="model"),
        "ix_gates_project_branch_kind_seq",
    ),
]


@pytest.mark.parametrize(("filters", "index"), PLANS)
def test_sqlite_history_page_uses_index(tmp_path, filters, index):
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    database = Database(Settings(database_url=url, data_dir=tmp_path))
    sent = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        sent.append((statement, parameters))

    try:
        database.migrate()
        event.listen(database.engine, "before_cursor_execute", record)
        with database.session() as session:
            GateRepository(session).page(filters, limit=50, cursor=None)
        event.remove(database.engine, "before_cursor_execute", record)
        ((statement, parameters),) = sent
        with database.engine.connect() as connection:
            cursor = connection.connection.cursor()
            plan = cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            details = " ".join(str(row[-1]) for row in plan.fetchall())
    finally:
        database.dispose()
    assert f"USING INDEX {index} " in details
    assert "TEMP B-TREE" not in details
