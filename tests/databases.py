"""Test databases: a fresh SQLite file or a fresh PostgreSQL database per use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_ENV = "DISTILGATE_TEST_POSTGRES_URL"
REQUIRE_ENV = "DISTILGATE_REQUIRE_POSTGRES"


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def skip_or_fail_without_postgres() -> str:
    """Return the admin URL, or skip (fail in CI) when PostgreSQL is not set up."""
    url = postgres_admin_url()
    if url is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {POSTGRES_ENV} is not set")
        pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL tests")
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, then drop it."""
    admin = make_url(skip_or_fail_without_postgres())
    name = f"distilgate_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL at {admin.render_as_string()} is required: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_url_for(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``backend`` ("sqlite" or "postgres")."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'distilgate.db'}"
        return
    with fresh_postgres_database() as url:
        yield url
