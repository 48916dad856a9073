"""The Celery application that carries gates from the API to workers.

A task message carries only the gate id. The worker reads the stored request,
fetches and verifies the artifacts, and runs the gate with ``app.jobs.run_job``,
the same code the API runs in-process.

The settings suit long CPU-bound jobs: a worker takes one message per process
(prefetch 1) and acknowledges it only after the job ends (acks late), so a
message of a worker that dies is delivered again. The broker's visibility
timeout is longer than the task's hard time limit, so Redis delivers an
unacknowledged message again only after its job was stopped. A message that
arrives twice anyway runs once, because the claim in the database is
conditional.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import kombu.exceptions
import sqlalchemy.exc
from celery import Celery, Task

from app.config import Settings
from app.errors import InputError
from app.executors.worker_context import WorkerContext

logger = logging.getLogger(__name__)

TASK_NAME = "distilgate.run_gate"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
BACKEND_SCHEMES = ("redis", "rediss", "rpc")
# Extra time past the gate's deadline before the soft and the hard task limits
# stop a job. The API's deadline sweeper ends the gate first, so a limit only
# frees the worker.
SOFT_LIMIT_GRACE_S = 30
HARD_LIMIT_GRACE_S = 90
# Extra time past the hard limit before the broker delivers an unacknowledged
# message again.
VISIBILITY_GRACE_S = 300
# Failures worth retrying: the database or the broker was briefly unreachable.
TRANSIENT_ERRORS = (sqlalchemy.exc.OperationalError, kombu.exceptions.OperationalError)


def safe_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def validate_urls(settings: Settings) -> None:
    """Check the broker and result backend URLs before Celery uses them.

    Raises:
        InputError: a URL has an unsupported scheme; the message names the
            setting and an example.
    """
    for setting, url, schemes, example in (
        ("broker_url", settings.broker_url, BROKER_SCHEMES, "redis://host:6379/0"),
        (
            "result_backend",
            settings.result_backend,
            BACKEND_SCHEMES,
            "redis://host:6379/1",
        ),
    ):
        scheme = urlsplit(url).scheme
        if scheme not in schemes or "://" not in url:
            raise InputError(
                f"DISTILGATE_{setting.upper()} {safe_url(url)!r} is not a supported "
                f"URL; use one starting with {', '.join(s + '://' for s in schemes)}, "
                f"for example {example}",
                field=setting,
                value=safe_url(url),
            )


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for ``settings``."""
    hard_limit_s = settings.job_timeout_s + HARD_LIMIT_GRACE_S
    return {
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.task_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_soft_time_limit": settings.job_timeout_s + SOFT_LIMIT_GRACE_S,
        "task_time_limit": hard_limit_s,
        "broker_transport_options": {
            "visibility_timeout": int(hard_limit_s + VISIBILITY_GRACE_S)
        },
        "broker_connection_retry_on_startup": True,
        # A job keeps running through a broker outage; its message is
        # delivered again later and the claim in the database skips it.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "result_expires": 24 * 3600,
        # Retries for about 9 s, so a submission outlives a broker restart.
        "task_publish_retry_policy": {
            "max_retries": 5,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 3,
        },
    }


def create_celery_app(settings: Settings) -> Celery:
    """Build the Celery app for ``settings``, with the gate task registered.

    Raises:
        InputError: the broker or result backend URL is not supported.
    """
    validate_urls(settings)
    app = Celery(
        "distilgate",
        broker=settings.broker_url,
        backend=settings.result_backend,
        set_as_current=False,
    )
    app.conf.update(celery_config(settings))
    _register_task(app, settings)
    return app


def _register_task(app: Celery, settings: Settings) -> None:
    context: list[WorkerContext] = []
    lock = threading.Lock()

    def worker_context() -> WorkerContext:
        # Built on first use in each pool process, after the fork, so no
        # database connection is shared between processes.
        with lock:
            if not context:
                context.append(WorkerContext(settings))
            return context[0]

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_NAME,
        bind=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=2,
        retry_backoff_max=60,
        retry_jitter=True,
        max_retries=5,
    )
    def run_gate(
        task: Task[Any, Any], gate_id: str, request_id: str | None = None
    ) -> str | None:
        """Evaluate one stored gate; return its final status."""
        logger.info(
            "task started gate_id=%s task_id=%s retries=%d request_id=%s",
            gate_id,
            task.request.id,
            task.request.retries,
            request_id,
        )
        return worker_context().run(gate_id, request_id=request_id)
