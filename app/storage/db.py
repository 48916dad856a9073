"""Engine set-up and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.errors import DistilGateError, InputError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaNotCurrentError(DistilGateError):
    """A database schema that is not at this version's newest migration."""

    status_code = 503
    error_type = "schema_not_current"


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
        pool_timeout=settings.db_pool_timeout_s,
        pool_recycle=settings.db_pool_recycle_s,
        # A connection the server or a proxy closed is replaced, not handed out.
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


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """Return the newest migration revision this version of DistilGate has."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the database's migration revision; None when it has no schema."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise unless the database schema is at this version's newest migration.

    Raises:
        SchemaNotCurrentError: the schema is missing, older or unknown. The
            message names `distilgate db upgrade` when that fixes it.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = _safe_url(engine)
    if current is not None and not _is_known(current):
        raise SchemaNotCurrentError(
            f"database {where} is at schema revision {current!r}, which this "
            f"version of DistilGate (newest revision {head}) does not know; a newer "
            "DistilGate migrated it, so run that version",
            field="database_url",
            value=where,
        )
    if current is None:
        state = f"database {where} has no DistilGate schema"
    else:
        state = f"database {where} is at schema revision {current}"
    raise SchemaNotCurrentError(
        f"{state}, but this version of DistilGate needs revision {head}; run "
        "`distilgate db upgrade` with the same DISTILGATE_DATABASE_URL, or set "
        "DISTILGATE_MIGRATE_ON_START=true",
        field="database_url",
        value=where,
    )


def _is_known(revision: str) -> bool:
    scripts = ScriptDirectory.from_config(alembic_config())
    return any(script.revision == revision for script in scripts.walk_revisions())


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations the database has not seen yet, up to ``revision``."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    logger.info(
        "database schema upgraded url=%s revision=%s", _safe_url(engine), revision
    )


# Errors that mean the database is down, locked or out of connections. Such a
# failure is worth a retry, so the service returns 503 for it, not 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class Database:
    """An engine plus a session factory, created once per process."""

    def __init__(self, settings: Settings):
        self.engine = create_db_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        upgrade_schema(self.engine)

    def check_schema(self) -> None:
        check_schema(self.engine)

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
