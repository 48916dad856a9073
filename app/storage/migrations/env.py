"""Alembic environment: runs on the connection handed over by ``upgrade_schema``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app.storage.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations with `distilgate db upgrade`, which passes the connection"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
