"""Settings read from ``DISTILGATE_*`` environment variables.

Nothing else in DistilGate reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service and CLI configuration."""

    model_config = SettingsConfigDict(env_prefix="DISTILGATE_", extra="ignore")

    # Storage
    database_url: str = Field(
        "sqlite:///./distilgate.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    data_dir: Path = Field(
        Path("./distilgate-data"),
        description="Directory of the artifact store (uploads, by sha256).",
    )
    db_pool_size: int = Field(5, ge=1, description="PostgreSQL connection pool size.")
    db_max_overflow: int = Field(
        10, ge=0, description="Extra connections past the pool."
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=0, description="How long SQLite waits for a lock, in milliseconds."
    )

    # Requests and evaluation
    max_upload_bytes: int = Field(
        1 << 30, ge=1, description="Largest accepted upload, per file, in bytes."
    )
    model_timeout_s: float = Field(
        300.0, gt=0, description="Time limit for measuring one model, in seconds."
    )

    allow_torchscript: bool = Field(
        False,
        description="Run TorchScript uploads, which execute code: trusted input only.",
    )

    # Jobs
    job_workers: int = Field(2, ge=1, description="Gates evaluated at once.")
    max_pending_jobs: int = Field(
        100, ge=1, description="Queued and running gates before new ones get 503."
    )
    job_timeout_s: float = Field(
        1800.0, gt=0, description="Deadline of one gate; past it the gate is error."
    )
    default_wait_s: float = Field(
        300.0,
        ge=0,
        le=3600,
        description="How long a POST waits for the verdict when `wait` is not given.",
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, description="How often overdue gates are ended, in seconds."
    )

    # Access
    admin_token: SecretStr | None = Field(
        None,
        description="Bootstrap admin token; when set, every request needs a token.",
    )
    public_read: bool = Field(
        False, description="With tokens on, serve read endpoints without a token."
    )
    token: SecretStr | None = Field(
        None, description="API token the CLI sends to a server (DISTILGATE_TOKEN)."
    )
    public_url: str | None = Field(
        None, description="Base URL of the service as clients reach it, for links."
    )

    # Server
    host: str = Field("127.0.0.1", description="Address `distilgate serve` binds.")
    port: int = Field(
        8000, ge=1, le=65535, description="Port `distilgate serve` binds."
    )
    log_level: str = Field("INFO", description="Root log level.")


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
