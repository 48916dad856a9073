"""Settings read from ``DISTILGATE_*`` environment variables.

Nothing else in DistilGate reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.netguard import Allowlist


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
    db_pool_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long a request waits for a free PostgreSQL connection, "
        "in seconds.",
    )
    db_pool_recycle_s: int = Field(
        1800,
        ge=-1,
        description="Age in seconds at which a PostgreSQL connection is replaced, "
        "or -1 to keep connections.",
    )
    migrate_on_start: bool = Field(
        True,
        description="Whether the service applies pending migrations when it "
        "starts. When false, it only checks that the schema is current.",
    )
    sqlite_busy_timeout_ms: int = Field(
        30_000, ge=0, description="How long SQLite waits for a lock, in milliseconds."
    )

    # Requests and evaluation
    max_upload_bytes: int = Field(
        1 << 30, ge=1, description="Largest accepted upload, per file, in bytes."
    )
    max_request_bytes: int = Field(
        4 << 30,
        ge=1,
        description="Largest request body, all files and fields together, in "
        "bytes; counted while it streams in, so chunked bodies are cut off too.",
    )
    rate_limit_per_minute: int = Field(
        600,
        ge=0,
        description="Gate submissions one token (or one client address while "
        "tokens are off) may make per minute; 0 turns the limit off.",
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

    # Scale-out: gates run on Celery workers when executor is "celery"
    executor: Literal["inprocess", "celery"] = Field(
        "inprocess",
        description="Where gates run: threads of the API process, or Celery workers "
        "started with `distilgate worker`.",
    )
    broker_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Celery broker URL (redis://, rediss://, amqp:// or amqps://).",
    )
    result_backend: str = Field(
        "redis://127.0.0.1:6379/1", description="Celery result backend URL."
    )
    task_queue: str = Field(
        "distilgate",
        min_length=1,
        description="Celery queue that the API sends gates to and workers consume.",
    )
    artifact_api_url: str | None = Field(
        None,
        description="Base URL of the API that workers fetch artifacts from when "
        "their data_dir does not have them.",
    )
    internal_token: SecretStr | None = Field(
        None,
        description="Secret shared by the API and its workers for artifact "
        "downloads; without it the internal artifact route is off.",
    )
    worker_concurrency: int = Field(
        1, ge=1, description="Gates one `distilgate worker` evaluates at once."
    )
    job_lease_s: float = Field(
        60.0,
        gt=0,
        description="A worker renews its claim on a running gate every quarter of "
        "this many seconds; a gate whose claim lapsed is queued again.",
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        description="Times a gate is started before a lost worker makes it error.",
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
    auth_failures_per_minute: int = Field(
        30,
        ge=0,
        description="Wrong tokens one client address may send per minute before "
        "its requests with a token get 429; 0 turns the limit off.",
    )
    webhook_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names, addresses and CIDR networks "
        "that webhooks may reach although they are internal (loopback, private, "
        "link-local), such as an on-premises CI server.",
    )

    @field_validator("webhook_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [entry.strip() for entry in value.split(",") if entry.strip()]
        if isinstance(value, list):
            Allowlist.parse(value)
        return value

    # Server
    host: str = Field("127.0.0.1", description="Address `distilgate serve` binds.")
    port: int = Field(
        8000, ge=1, le=65535, description="Port `distilgate serve` binds."
    )
    log_level: str = Field("INFO", description="Root log level.")

    # Observability
    log_format: Literal["console", "json"] = Field(
        "console",
        description="Log lines as readable text, or one JSON object per line.",
    )
    metrics_public: bool = Field(
        False, description="Serve /metrics without a token even when tokens are on."
    )
    metrics_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long /metrics reuses the gate counts it read from the "
        "database, in seconds.",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1", description="Address a worker serves its own metrics on."
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port a worker serves its own metrics on, or unset for none.",
    )


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
