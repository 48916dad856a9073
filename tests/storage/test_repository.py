import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.config import Settings
from app.errors import InputError
from app.storage.db import Database, head_revision
from app.storage.models import GateRecord
from app.storage.repository import GateFilter, GateRepository


@pytest.fixture
def database(database_url, tmp_path):
    database = Database(Settings(database_url=database_url, data_dir=tmp_path))
    database.migrate()
    yield database
    database.dispose()


def make_record(number, **labels):
    values = {"kind": "model", "status": "passed", "project": "shop", "branch": "main"}
    values.update(labels)
    return GateRecord(
        id=f"gate{number:04d}",
        commit=f"c{number}",
        created_at=datetime.now(UTC),
        policy={},
        metrics={"n": number},
        checks=[],
        details={},
        artifacts={},
        **values,
    )


def add(database, *records):
    with database.session() as session:
        for record in records:
            GateRepository(session).add(record)


def page(database, filters=None, limit=50, cursor=None):
    filters = filters or GateFilter()
    with database.session() as session:
        records, next_cursor = GateRepository(session).page(
            filters, limit=limit, cursor=cursor
        )
        return [record.id for record in records], next_cursor


def test_repository_pages_newest_first_without_gaps(database):
    add(database, *(make_record(n) for n in range(7)))
    seen, cursor = [], None
    while True:
        ids, cursor = page(database, limit=3, cursor=cursor)
        seen.extend(ids)
        if cursor is None:
            break
    assert seen == [f"gate{n:04d}" for n in reversed(range(7))]


def test_repository_filters_by_every_label(database):
    add(
        database,
        make_record(1),
        make_record(2, branch="dev"),
        make_record(3, kind="data"),
        make_record(4, status="failed"),
        make_record(5, project="other"),
    )
    assert page(database, GateFilter(branch="dev"))[0] == ["gate0002"]
    assert page(database, GateFilter(kind="data"))[0] == ["gate0003"]
    assert page(database, GateFilter(status="failed"))[0] == ["gate0004"]
    assert page(database, GateFilter(project="other"))[0] == ["gate0005"]
    shop_main_passed = GateFilter(
        project="shop", branch="main", kind="model", status="passed"
    )
    assert page(database, shop_main_passed)[0] == ["gate0001"]


def test_repository_find_returns_stored_json(database):
    add(database, make_record(9))
    with database.session() as session:
        record = GateRepository(session).find("gate0009")
        assert record is not None
        assert record.metrics == {"n": 9}
        assert GateRepository(session).find("missing") is None


SEQ_NOT_A_NUMBER = "c2VxOmFiYw"  # base64 of "seq:abc"


@pytest.mark.parametrize("cursor", ["not-a-cursor", "!!!", SEQ_NOT_A_NUMBER])
def test_repository_rejects_foreign_cursor(database, cursor):
    with pytest.raises(
        InputError, match=r"cursor .* is not valid; pass the next_cursor"
    ):
        page(database, cursor=cursor)


def test_repository_records_artifact_once(database):
    now = datetime.now(UTC)
    with database.session() as session:
        GateRepository(session).record_artifact("a" * 64, 10, now)
        GateRepository(session).record_artifact("a" * 64, 10, now)
    with database.session() as session:
        count = session.execute(text("SELECT count(*) FROM artifacts")).scalar_one()
    assert count == 1


def test_repository_concurrent_writers_never_lock_out(database):
    errors = []

    def write(offset):
        try:
            for n in range(offset, offset + 20):
                add(database, make_record(n))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(page(database, limit=500)[0]) == 80


def test_sqlite_runs_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    database = Database(Settings(database_url=url, data_dir=tmp_path))
    with database.engine.connect() as connection:
        mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
        busy = connection.execute(text("PRAGMA busy_timeout")).scalar_one()
    database.dispose()
    assert mode == "wal"
    assert busy == 30_000


def test_migrations_are_idempotent(database):
    database.migrate()
    with database.session() as session:
        version = session.execute(text("SELECT version_num FROM alembic_version"))
        assert version.scalar_one() == head_revision()
