"""Alembic migrations on SQLite and PostgreSQL, and the start-up schema check."""

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.config import Settings
from app.runtime import Runtime
from app.storage.db import (
    Database,
    SchemaNotCurrentError,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_schema,
)
from app.storage.models import Base

HISTORY_INDEXES = {
    "ix_gates_project_branch_seq": ["project", "branch", "seq"],
    "ix_gates_project_kind_seq": ["project", "kind", "seq"],
    "ix_gates_project_status_seq": ["project", "status", "seq"],
    "ix_gates_project_branch_kind_status_seq": [
        "project",
        "branch",
        "kind",
        "status",
        "seq",
    ],
    "ix_gates_commit_seq": ["commit", "seq"],
    "ix_gates_created_at": ["created_at"],
}


@pytest.fixture
def database(database_url, tmp_path):
    database = Database(Settings(database_url=database_url, data_dir=tmp_path))
    yield database
    database.dispose()


def gate_indexes(database):
    indexes = inspect(database.engine).get_indexes("gates")
    return {index["name"]: index["column_names"] for index in indexes}


def downgrade(database, revision):
    config = alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def add_gate(database, number):
    """Insert a gate with the columns every revision since 0002 has."""
    statement = text(
        'INSERT INTO gates (id, kind, status, project, branch, "commit", '
        "created_at, policy, metrics, checks, details, artifacts) VALUES "
        "(:id, 'model', 'passed', 'shop', 'main', :commit, :created_at, "
        "'{}', '{}', '[]', '{}', '{}')"
    )
    values = {
        "id": f"{number:032x}",
        "commit": f"c{number}",
        "created_at": datetime.now(UTC),
    }
    with database.engine.begin() as connection:
        connection.execute(statement, values)


def test_migration_0003_creates_history_indexes(database):
    upgrade_schema(database.engine, "0002")
    before = gate_indexes(database)
    database.migrate()
    after = gate_indexes(database)
    for name, columns in HISTORY_INDEXES.items():
        assert name not in before
        assert after[name] == columns


def test_migration_0003_keeps_rows_and_downgrades(database):
    upgrade_schema(database.engine, "0002")
    add_gate(database, 1)
    database.migrate()
    add_gate(database, 2)
    downgrade(database, "0002")
    assert set(HISTORY_INDEXES).isdisjoint(gate_indexes(database))
    assert current_revision(database.engine) == "0002"
    database.migrate()
    with database.session() as session:
        count = session.execute(text("SELECT count(*) FROM gates")).scalar_one()
    assert count == 2
    assert set(HISTORY_INDEXES) <= set(gate_indexes(database))


def test_migrations_match_models(database):
    database.migrate()
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_check_schema_rejects_empty_database(database):
    with pytest.raises(SchemaNotCurrentError, match="has no DistilGate schema") as info:
        database.check_schema()
    assert "run `distilgate db upgrade`" in info.value.message
    assert f"needs revision {head_revision()}" in info.value.message


def test_check_schema_rejects_older_revision(database):
    upgrade_schema(database.engine, "0002")
    with pytest.raises(
        SchemaNotCurrentError, match="is at schema revision 0002, but this version"
    ) as info:
        database.check_schema()
    assert "DISTILGATE_MIGRATE_ON_START=true" in info.value.message


def test_check_schema_rejects_unknown_revision(database):
    database.migrate()
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(
        SchemaNotCurrentError, match="revision '9999', which this version"
    ):
        database.check_schema()


def test_check_schema_accepts_current_schema(database):
    database.migrate()
    database.check_schema()
    assert current_revision(database.engine) == head_revision()


def test_runtime_start_without_migrate_rejects_old_schema(database_url, tmp_path):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, migrate_on_start=False
    )
    runtime = Runtime(settings)
    try:
        with pytest.raises(SchemaNotCurrentError, match="distilgate db upgrade"):
            runtime.start()
        assert current_revision(runtime.database.engine) is None
    finally:
        runtime.stop()


def test_runtime_start_without_migrate_accepts_current_schema(database_url, tmp_path):
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, migrate_on_start=False
    )
    runtime = Runtime(settings)
    try:
        runtime.database.migrate()
        runtime.start()
        assert current_revision(runtime.database.engine) == head_revision()
    finally:
        runtime.stop()


def test_runtime_start_migrates_by_default(database_url, tmp_path):
    runtime = Runtime(Settings(database_url=database_url, data_dir=tmp_path))
    try:
        runtime.start()
        assert current_revision(runtime.database.engine) == head_revision()
    finally:
        runtime.stop()
