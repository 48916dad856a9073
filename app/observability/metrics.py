"""Prometheus metrics of the service and its workers.

Two kinds of metric, so that the numbers stay right with several processes:

- Gate counts, queue depth and jobs in flight are read from the database when
  Prometheus scrapes, so they include gates that any process or worker runs.
  The reads are cached for ``metrics_cache_s`` seconds.
- Durations and upload bytes are observed by the process doing the work, in
  ``PROCESS_REGISTRY``: the API process for uploads and in-process jobs, a
  worker for the jobs it runs (served by ``start_worker_metrics_server``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from app.config import Settings
from app.schemas import GateKind, GateStatus
from app.storage.gate_stats import GateCounts

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = get_args(GateKind)
STATUSES: tuple[str, ...] = get_args(GateStatus)
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

PROCESS_REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    PROCESS_REGISTRY.register(_collector)

GATE_DURATION = Histogram(
    "distilgate_gate_duration_seconds",
    "Time from a job claiming a gate to storing its outcome, in seconds.",
    ["kind", "status"],
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)
QUEUE_WAIT = Histogram(
    "distilgate_gate_queue_wait_seconds",
    "Time from storing a gate to a job claiming it, in seconds.",
    ["kind"],
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)
UPLOAD_BYTES = Counter(
    "distilgate_upload_bytes",
    "Bytes of uploaded artifacts in accepted gate requests.",
    ["kind", "field"],
    registry=PROCESS_REGISTRY,
)


def observe_gate(kind: str, status: str, duration_s: float) -> None:
    """Record how long a job took to evaluate a gate and store ``status``."""
    GATE_DURATION.labels(kind=kind, status=status).observe(max(duration_s, 0.0))


def observe_queue_wait(kind: str, wait_s: float) -> None:
    """Record how long a gate waited in the queue before a job claimed it."""
    QUEUE_WAIT.labels(kind=kind).observe(max(wait_s, 0.0))


def count_uploads(kind: str, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
    """Add the ``size_bytes`` of each stored artifact, by form field."""
    for field, info in artifacts.items():
        UPLOAD_BYTES.labels(kind=kind, field=field).inc(int(info["size_bytes"]))


class GateStatsCollector:
    """Gauges of stored gates, read through ``read`` at most every ``ttl_s``."""

    def __init__(
        self,
        read: Callable[[], GateCounts],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: GateCounts | None = None
        self._read_at: float | None = None

    def counts(self) -> GateCounts | None:
        """Return the cached counts, reading them again once they are stale.

        Returns None when the read failed. A failure is cached like a success,
        so a database outage logs one warning per ``ttl_s``.
        """
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                self._cached = self._read_logged()
                self._read_at = now
            return self._cached

    def _read_logged(self) -> GateCounts | None:
        try:
            return self._read()
        # A scrape must still return the process metrics when the database
        # is down, and distilgate_database_up reports the failure.
        except Exception:
            logger.warning("gate counts read failed", exc_info=True)
            return None

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        up = GaugeMetricFamily(
            "distilgate_database_up",
            "1 when the last read of gate counts from the database succeeded.",
        )
        up.add_metric([], 0 if counts is None else 1)
        yield up
        if counts is not None:
            yield from _gate_gauges(counts)


def _gate_gauges(counts: GateCounts) -> Iterator[Metric]:
    by_kind_status = counts.by_kind_status
    gates = GaugeMetricFamily(
        "distilgate_gates",
        "Stored gates by kind and status.",
        labels=["kind", "status"],
    )
    pairs = {(k, s) for k in KINDS for s in STATUSES} | set(by_kind_status)
    for kind, status in sorted(pairs):
        gates.add_metric([kind, status], by_kind_status.get((kind, status), 0))
    yield gates
    yield _total("distilgate_queue_depth", "Gates queued for a job.", counts, "queued")
    yield _total(
        "distilgate_jobs_in_flight",
        "Gates being evaluated now, by any process or worker.",
        counts,
        "running",
    )
    age = GaugeMetricFamily(
        "distilgate_oldest_queued_gate_age_seconds",
        "Age of the oldest queued gate, in seconds; 0 when none is queued.",
    )
    oldest = counts.oldest_queued_at
    age.add_metric([], 0 if oldest is None else _seconds_since(oldest))
    yield age


def _total(name: str, doc: str, counts: GateCounts, status: str) -> Metric:
    gauge = GaugeMetricFamily(name, doc)
    gauge.add_metric(
        [], sum(n for (_, s), n in counts.by_kind_status.items() if s == status)
    )
    return gauge


def _seconds_since(moment: datetime) -> float:
    return max((datetime.now(UTC) - moment).total_seconds(), 0.0)


class _ProcessMetrics:
    """Forwards the metrics of ``PROCESS_REGISTRY`` into another registry."""

    def collect(self) -> Iterator[Metric]:
        yield from PROCESS_REGISTRY.collect()


class MetricsExporter:
    """The metrics one API process serves: its own and the stored gate counts."""

    def __init__(self, read_counts: Callable[[], GateCounts], *, ttl_s: float):
        self.gate_stats = GateStatsCollector(read_counts, ttl_s=ttl_s)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ProcessMetrics())
        self.registry.register(self.gate_stats)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """Return the exposition and its content type.

        The format is Prometheus text unless ``accept`` requests OpenMetrics.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def start_worker_metrics_server(settings: Settings) -> WSGIServer | None:
    """Serve this process's metrics on ``worker_metrics_port``, in a thread.

    Returns the server, or None when ``worker_metrics_port`` is unset. A
    worker has no gate counts of its own: the API's /metrics serves those.
    """
    port = settings.worker_metrics_port
    if port is None:
        return None
    host = settings.worker_metrics_host
    server, _thread = start_http_server(port, addr=host, registry=PROCESS_REGISTRY)
    logger.info("worker metrics served host=%s port=%d", host, port)
    return server
