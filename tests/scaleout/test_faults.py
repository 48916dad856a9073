"""Faults injected while real clients load an API and two `distilgate worker`s.

Each test starts its own API and two workers on 127.0.0.1 and submits a
bounded load of gates from several client threads: metrics gates, and every
fifth a model gate. It injects one fault mid-load. Then it checks that every
gate reached a terminal status and that none was lost or duplicated. The
summary line of each test says what the fault did to the gates.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from tests.databases import fresh_postgres_database
from tests.scaleout.load import Audit, LoadClient, LoadRun, audit, plan
from tests.scaleout.processes import Cluster
from tests.scaleout.services import PostgresCluster, RedisServer

GATES = 40
CLIENTS = 6
MODEL_EVERY = 5
LOAD_TIMEOUT_S = 150
FAULT_AFTER_TERMINAL = 8
FAULT_REDIS_PORT = 6390
FAULT_POSTGRES_PORT = 5440
FAST_LEASES = {"DISTILGATE_JOB_LEASE_S": "4", "DISTILGATE_MAX_PENDING_JOBS": "1000"}


class BackgroundLoad:
    """A load running in a thread while the test injects a fault."""

    def __init__(self, cluster: Cluster, artifacts: dict[str, Path], project: str):
        self.cluster = cluster
        self.project = project
        self.specs = plan(GATES, MODEL_EVERY, project)
        self.client = LoadClient(cluster.url, artifacts, project)
        self.run: LoadRun | None = None
        self._thread = threading.Thread(target=self._load, daemon=True)

    def _load(self) -> None:
        self.run = self.client.run(self.specs, CLIENTS, LOAD_TIMEOUT_S)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def wait_for_terminal(self, count: int, timeout_s: float = 60) -> None:
        """Wait until ``count`` gates have a verdict, so the fault hits mid-load."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.client.finished >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} verdicts:\n{self.cluster.logs()}")

    def finish(self) -> tuple[LoadRun, Audit]:
        self._thread.join(LOAD_TIMEOUT_S + 90)
        assert self.run is not None, "the load did not end"
        logs = "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.cluster.root.glob("*.log"))
        )
        found = audit(self.cluster.database_url, self.project, self.specs, logs)
        return self.run, found


def check_nothing_lost(fault: str, run: LoadRun, found: Audit, cluster: Cluster):
    summary = (
        f"{fault}: statuses {dict(run.statuses)}, 5xx {dict(run.server_errors)}, "
        f"transport errors {run.transport_errors}; {found.summary()}"
    )
    print(summary)
    assert len(run.terminal) == GATES, f"{summary}\n{cluster.logs()}"
    assert found.lost == [], f"{summary}\n{cluster.logs()}"
    assert found.duplicated == [], f"{summary}\n{cluster.logs()}"
    assert found.rows == GATES, summary
    return summary


def start_cluster(cluster: Cluster) -> Cluster:
    cluster.start_api()
    cluster.worker()
    cluster.worker()
    return cluster


def test_worker_killed_mid_load(artifacts, cluster_for):
    """Kill -9 one of two workers mid-load.

    The lease of the gate that the killed worker held lapses, so the gate runs
    again on the other worker as a second attempt. No gate is lost or stored
    twice.
    """
    with fresh_postgres_database() as database_url:
        cluster = start_cluster(cluster_for(database_url, **FAST_LEASES))
        load = BackgroundLoad(cluster, artifacts, "fault-kill").start()
        load.wait_for_terminal(FAULT_AFTER_TERMINAL)
        cluster.workers[0].kill()
        run, found = load.finish()
        cluster.stop()
        summary = check_nothing_lost("worker killed", run, found, cluster)

    assert found.attempts[1] >= GATES - 1, summary
    assert run.server_errors.total() == 0, summary


def test_redis_restarted_mid_load(artifacts, cluster_for, tmp_path):
    """Kill the broker (Redis without persistence) mid-load and start it again.

    The restarted broker has lost every queued message. The API sends each
    gate that stays queued again once its send lapses, so every gate still gets
    a verdict. Publishing retries for about 9 s, which covers the outage.
    """
    broker = RedisServer(FAULT_REDIS_PORT, tmp_path / "redis.log").start()
    try:
        with fresh_postgres_database() as database_url:
            cluster = Cluster(
                database_url,
                _root(tmp_path),
                broker.url,
                {**FAST_LEASES, "DISTILGATE_BROKER_URL": f"{broker.url}/0"}
                | {"DISTILGATE_RESULT_BACKEND": f"{broker.url}/1"},
            )
            try:
                start_cluster(cluster)
                load = BackgroundLoad(cluster, artifacts, "fault-redis").start()
                load.wait_for_terminal(FAULT_AFTER_TERMINAL)
                broker.kill()
                time.sleep(3)
                broker.start()
                run, found = load.finish()
            finally:
                cluster.stop()
            check_nothing_lost("redis restarted", run, found, cluster)
    finally:
        broker.kill()


def test_postgres_restarted_mid_load(artifacts, cluster_for, tmp_path, redis_url):
    """Stop PostgreSQL (fast shutdown) mid-load and start it again.

    Celery retries a job whose database writes fail, and a gate whose lease
    lapsed during the outage runs again. API calls during the outage get 503,
    and the clients resend them.
    """
    postgres = PostgresCluster(FAULT_POSTGRES_PORT).create()
    try:
        database_url = postgres.new_database(f"faults_{uuid.uuid4().hex[:8]}")
        cluster = start_cluster(cluster_for(database_url, **FAST_LEASES))
        load = BackgroundLoad(cluster, artifacts, "fault-postgres").start()
        load.wait_for_terminal(FAULT_AFTER_TERMINAL)
        postgres.stop("fast")
        time.sleep(3)
        postgres.start()
        run, found = load.finish()
        cluster.stop()
        check_nothing_lost("postgres restarted", run, found, cluster)
    finally:
        postgres.remove()


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    root.mkdir()
    return root
