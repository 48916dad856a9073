"""Gate gauges read from a real database, process metrics, and the worker server."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.config import Settings
from app.observability import metrics
from app.observability.metrics import MetricsExporter, start_worker_metrics_server
from app.storage.db import Database
from app.storage.gate_stats import read_gate_counts
from app.storage.models import GateRecord
from tests.observability.exposition import key, samples
from tests.servers import free_port


@pytest.fixture
def database(database_url, tmp_path):
    database = Database(Settings(database_url=database_url, data_dir=tmp_path))
    database.migrate()
    yield database
    database.dispose()


def add_gate(database, number, kind, status, age_s=0.0):
    with database.session() as session:
        session.add(
            GateRecord(
                id=f"gate{number:028d}",
                kind=kind,
                status=status,
                project="shop",
                created_at=datetime.now(UTC) - timedelta(seconds=age_s),
                policy={},
                metrics={},
                checks=[],
                details={},
                artifacts={},
            )
        )


def reader(database):
    def read():
        with database.session() as session:
            return read_gate_counts(session)

    return read


def gates(kind, status):
    return key("distilgate_gates", kind=kind, status=status)


def scalar(name):
    return key(name)


def test_exporter_counts_gates_by_kind_and_status(database):
    add_gate(database, 1, "model", "passed")
    add_gate(database, 2, "model", "passed")
    add_gate(database, 3, "model", "failed")
    add_gate(database, 4, "data", "queued", age_s=120)
    add_gate(database, 5, "model", "queued", age_s=10)
    add_gate(database, 6, "data", "running")
    body, content_type = MetricsExporter(reader(database), ttl_s=0).render(None)
    values = samples(body)
    assert content_type.startswith("text/plain")
    assert values[gates("model", "passed")] == 2
    assert values[gates("model", "failed")] == 1
    assert values[gates("data", "queued")] == 1
    assert values[gates("data", "waived")] == 0
    assert values[scalar("distilgate_queue_depth")] == 2
    assert values[scalar("distilgate_jobs_in_flight")] == 1
    assert values[scalar("distilgate_database_up")] == 1
    assert 119 <= values[scalar("distilgate_oldest_queued_gate_age_seconds")] < 300


def test_exporter_serves_zeros_on_empty_database(database):
    body, _ = MetricsExporter(reader(database), ttl_s=0).render(None)
    values = samples(body)
    assert values[gates("model", "running")] == 0
    assert values[scalar("distilgate_queue_depth")] == 0
    assert values[scalar("distilgate_oldest_queued_gate_age_seconds")] == 0


def test_exporter_includes_process_metrics(database):
    body, _ = MetricsExporter(reader(database), ttl_s=0).render(None)
    names = {name for name, _ in samples(body)}
    assert "python_info" in names
    assert "process_cpu_seconds_total" in names


def test_gate_counts_cached_for_ttl(database):
    now = [100.0]
    collector = metrics.GateStatsCollector(
        reader(database), ttl_s=5.0, clock=lambda: now[0]
    )
    add_gate(database, 1, "data", "passed")
    first = collector.counts()
    add_gate(database, 2, "data", "passed")
    now[0] += 4.9
    cached = collector.counts()
    now[0] += 0.1
    fresh = collector.counts()
    assert first is not None
    assert cached is not None
    assert fresh is not None
    assert first.by_kind_status[("data", "passed")] == 1
    assert cached.by_kind_status[("data", "passed")] == 1
    assert fresh.by_kind_status[("data", "passed")] == 2


def test_unreadable_database_reports_down(tmp_path, caplog):
    unmigrated = Database(
        Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path)
    )
    try:
        with caplog.at_level(logging.WARNING, logger="app.observability.metrics"):
            body, _ = MetricsExporter(reader(unmigrated), ttl_s=0).render(None)
    finally:
        unmigrated.dispose()
    values = samples(body)
    assert values[scalar("distilgate_database_up")] == 0
    assert gates("model", "passed") not in values
    assert "python_info" in {name for name, _ in values}
    assert "gate counts read failed" in caplog.text
    assert "no such table" in caplog.text


def test_exporter_speaks_openmetrics_when_asked(database):
    accept = "application/openmetrics-text; version=1.0.0"
    body, content_type = MetricsExporter(reader(database), ttl_s=0).render(accept)
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_observations_update_process_registry():
    registry = metrics.PROCESS_REGISTRY
    labels = {"kind": "data", "status": "passed"}
    count = "distilgate_gate_duration_seconds_count"
    before = registry.get_sample_value(count, labels) or 0.0
    upload_labels = {"kind": "data", "field": "subset"}
    uploads = "distilgate_upload_bytes_total"
    uploaded_before = registry.get_sample_value(uploads, upload_labels) or 0.0
    metrics.observe_gate("data", "passed", 1.5)
    metrics.count_uploads("data", {"subset": {"size_bytes": 1234, "sha256": "x"}})
    assert registry.get_sample_value(count, labels) == before + 1
    assert registry.get_sample_value(uploads, upload_labels) == uploaded_before + 1234


def test_worker_metrics_server_serves_process_registry():
    port = free_port()
    settings = Settings(worker_metrics_port=port, worker_metrics_host="127.0.0.1")
    server = start_worker_metrics_server(settings)
    assert server is not None
    try:
        metrics.observe_gate("model", "failed", 0.2)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    values = samples(response.content)
    assert response.status_code == 200
    count = key("distilgate_gate_duration_seconds_count", kind="model", status="failed")
    assert values[count] >= 1
    assert not any(name == "distilgate_gates" for name, _ in values)


def test_worker_metrics_server_off_without_port():
    assert start_worker_metrics_server(Settings(worker_metrics_port=None)) is None
