"""Engine set-up and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import InputError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_db_engine(settings: Settings) -> Engine:
    """Create an engine for ``settings.database_url``.

    SQLite runs in WAL mode with a busy timeout, so concurrent CI jobs wait for
    the write lock instead of failing with "database is locked".
    """
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise InputError(
            f"DISTILGATE_DATABASE_URL {settings.database_url!r} is not a database "
            "URL; use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
            field="database_url",
            value=settings.database_url,
        ) from None
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings)
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


def _sqlite_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    timeout_s = settings.sqlite_busy_timeout_ms / 1000
    engine = create_engine(url, connect_args={"timeout": timeout_s})
    busy_ms = settings.sqlite_busy_timeout_ms

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def upgrade_schema(engine: Engine) -> None:
    """Apply every Alembic migration that the database has not seen yet."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema up to date url=%s", _safe_url(engine))


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Database:
    """An engine plus a session factory, created once per process."""

    def __init__(self, settings: Settings):
        self.engine = create_db_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        upgrade_schema(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
