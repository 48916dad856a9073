"""``distilgate worker``: a Celery worker that evaluates gates the API queued."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from typing import TYPE_CHECKING

import kombu.exceptions

from app.config import Settings, get_settings
from app.errors import InputError

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

POOLS = ("prefork", "solo", "threads")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BROKER_CONNECT_RETRIES = 2


def add_parser(
    subcommands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the ``worker`` subcommand."""
    settings = get_settings()
    worker = subcommands.add_parser(
        "worker",
        help="evaluate queued gates (needs DISTILGATE_EXECUTOR=celery)",
        description="Start a Celery worker that takes gates from the broker at "
        "DISTILGATE_BROKER_URL and evaluates them.",
    )
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        default=settings.worker_concurrency,
        help="gates evaluated at once (default DISTILGATE_WORKER_CONCURRENCY, "
        f"now {settings.worker_concurrency})",
    )
    worker.add_argument(
        "--loglevel",
        type=str.upper,
        choices=LOG_LEVELS,
        default=settings.log_level.upper(),
        help=f"log level (default DISTILGATE_LOG_LEVEL, now {settings.log_level})",
    )
    worker.add_argument(
        "--queues",
        default=settings.task_queue,
        help="comma-separated queues to consume (default DISTILGATE_TASK_QUEUE, "
        f"now {settings.task_queue})",
    )
    worker.add_argument(
        "--pool",
        choices=POOLS,
        default="prefork",
        help="prefork runs each gate in a child process and enforces the time "
        "limits; solo and threads do not enforce them (default prefork)",
    )
    worker.set_defaults(handler=run_worker)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def run_worker(args: argparse.Namespace) -> int:
    """Start the worker and block until it stops; return its exit code.

    Raises:
        InputError: the executor is not ``celery``, a URL is invalid, or the
            broker is unreachable.
    """
    from app.executors.celery_app import create_celery_app
    from app.observability.logs import configure_logging
    from app.observability.metrics import start_worker_metrics_server

    settings = get_settings()
    _require_celery(settings)
    app = create_celery_app(settings)
    _check_broker(app, settings)
    configure_logging(settings, level=args.loglevel)
    # Celery would otherwise replace the root handler and its redaction filter.
    app.conf.worker_hijack_root_logger = False
    # With --pool prefork, jobs run in child processes, so this server shows
    # the parent's process metrics only (see docs/observability.md).
    start_worker_metrics_server(settings)
    queues = [name.strip() for name in args.queues.split(",") if name.strip()]
    logger.info(
        "worker starting pool=%s concurrency=%d queues=%s data_dir=%s",
        args.pool,
        args.concurrency,
        ",".join(queues),
        settings.data_dir,
    )
    worker = app.Worker(
        hostname=f"distilgate-{os.getpid()}@{socket.gethostname()}",
        pool_cls=args.pool,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        queues=queues,
        without_gossip=True,
        without_mingle=True,
        quiet=True,
    )
    worker.start()
    logger.info("worker stopped exit_code=%s", worker.exitcode)
    return int(worker.exitcode or 0)


def _require_celery(settings: Settings) -> None:
    if settings.executor != "celery":
        raise InputError(
            f"DISTILGATE_EXECUTOR is {settings.executor!r}, so the API runs gates "
            "itself and sends none to workers; set DISTILGATE_EXECUTOR=celery for "
            "the API and its workers",
            field="executor",
            value=settings.executor,
        )


def _check_broker(app: Celery, settings: Settings) -> None:
    from app.executors.celery_app import safe_url

    connection = app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=BROKER_CONNECT_RETRIES)
    except (kombu.exceptions.OperationalError, OSError) as exc:
        raise InputError(
            f"the broker at DISTILGATE_BROKER_URL {safe_url(settings.broker_url)!r} "
            f"is unreachable ({type(exc).__name__}: {exc}); start it or fix the URL",
            field="broker_url",
            value=safe_url(settings.broker_url),
        ) from None
    finally:
        connection.release()
