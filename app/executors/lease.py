"""Renew the lease on a running gate while a job evaluates it.

A worker's claim on a gate lasts ``lease_s`` seconds, and the worker renews it
every quarter of that. When the worker dies, renewals stop, the lease
lapses, and the API's sweeper puts the gate back in the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta

from app.gates import GateService

logger = logging.getLogger(__name__)

ServiceScope = Callable[[], AbstractContextManager[GateService]]


@contextmanager
def keep_lease(
    scope: ServiceScope, gate_id: str, attempt: int, lease_s: float | None
) -> Iterator[None]:
    """Renew the gate's lease in a daemon thread until the block exits.

    Does nothing when ``lease_s`` is None (jobs that run in the API process).
    """
    if lease_s is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_renew_until,
        args=(stop, scope, gate_id, attempt, lease_s),
        name=f"distilgate-lease-{gate_id}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _renew_until(
    stop: threading.Event,
    scope: ServiceScope,
    gate_id: str,
    attempt: int,
    lease_s: float,
) -> None:
    while not stop.wait(lease_s / 4):
        until = datetime.now(UTC) + timedelta(seconds=lease_s)
        try:
            with scope() as service:
                renewed = service.repository.renew_lease(gate_id, attempt, until)
        # A database outage must not end the job; the next renewal tries again.
        except Exception:
            logger.exception(
                "lease renewal failed gate_id=%s attempt=%d", gate_id, attempt
            )
            continue
        if not renewed:
            logger.warning(
                "lease lost, the gate ended or was claimed again gate_id=%s attempt=%d",
                gate_id,
                attempt,
            )
            return
