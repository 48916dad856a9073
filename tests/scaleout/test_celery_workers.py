"""Gates evaluated by `distilgate worker` processes through Redis.

Every test starts a real API server (executor=celery) and real workers on
127.0.0.1 and submits gates over HTTP. Tests that take ``database_url`` run on
SQLite and PostgreSQL, the others on SQLite.
"""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.helpers import post_files
from tests.databases import database_url_for
from tests.scaleout.processes import TERMINAL

TIMEOUT_S = 180


def metrics_body(project: str, subset_coverage: float) -> dict:
    return {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": subset_coverage},
    }


def post_metrics(cluster, body: dict, **params) -> httpx.Response:
    return httpx.post(
        f"{cluster.url}/api/v1/gates/metrics", json=body, params=params, timeout=60
    )


def data_files(artifacts, subset: str = "subset_good_csv") -> dict:
    return {"original": artifacts["original_csv"], "subset": artifacts[subset]}


def post_data(cluster, artifacts, subset: str = "subset_good_csv", **form):
    return post_files(
        cluster.url,
        "data",
        data_files(artifacts, subset),
        scenario_columns="ink,width",
        label_column="label",
        **form,
    )


def queue_data(cluster, artifacts) -> httpx.Response:
    """Submit a data gate without waiting for its verdict."""
    return httpx.post(
        f"{cluster.url}/api/v1/gates/data",
        params={"wait": 0},
        files={
            role: (path.name, path.read_bytes())
            for role, path in data_files(artifacts).items()
        },
        data={"scenario_columns": "ink,width", "label_column": "label"},
        timeout=60,
    )


def gate_row(database_url: str, gate_id: str) -> dict:
    """Read a gate's job columns straight from the database."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT status, attempts, error FROM gates WHERE id = :id"),
                {"id": gate_id},
            ).one()
    finally:
        engine.dispose()
    return dict(row._mapping)


def test_workers_run_gates_without_shared_disk(database_url, artifacts, cluster_for):
    cluster = cluster_for(database_url)
    cluster.start_api()
    worker = cluster.worker()
    passing = post_metrics(cluster, metrics_body("scale", 0.99), wait=TIMEOUT_S)
    failing = post_metrics(cluster, metrics_body("scale", 0.50), wait=TIMEOUT_S)
    data = post_data(cluster, artifacts, project="scale")
    model = post_files(
        cluster.url,
        "model",
        {
            "teacher": artifacts["teacher"],
            "student": artifacts["student"],
            "dataset": artifacts["digits_test_npz"],
        },
        project="scale",
    )
    assert passing.status_code == 200, cluster.logs()
    assert passing.json()["status"] == "passed"
    assert failing.json()["status"] == "failed"
    assert data.status_code == 200, data.text
    assert data.json()["status"] == "passed"
    assert model.status_code == 200, model.text
    assert model.json()["status"] == "passed"
    for info in model.json()["artifacts"].values():
        sha256 = info["sha256"]
        assert (cluster.root / "worker-0" / sha256[:2] / sha256[2:4] / sha256).is_file()
    assert f"artifact downloaded gate_id={model.json()['id']}" in worker.log_text()


@pytest.fixture
def sqlite_url(tmp_path):
    with database_url_for("sqlite", tmp_path) as url:
        yield url


def blob_path(root, sha256: str):
    return root / sha256[:2] / sha256[2:4] / sha256


@pytest.mark.parametrize("shared_disk", [False, True], ids=["fetched", "shared"])
def test_damaged_artifact_gives_error(sqlite_url, artifacts, cluster_for, shared_disk):
    cluster = cluster_for(sqlite_url)
    cluster.start_api()
    queued = queue_data(cluster, artifacts)
    assert queued.status_code == 202, queued.text
    gate = queued.json()
    sha256 = gate["artifacts"]["subset"]["sha256"]
    stored = blob_path(cluster.api_data_dir, sha256)
    damaged = bytearray(stored.read_bytes())
    damaged[-2] ^= 0x01
    stored.write_bytes(bytes(damaged))
    cluster.worker(shared_disk=shared_disk)
    result = cluster.wait_for(gate["id"], TERMINAL, TIMEOUT_S)
    assert result["status"] == "error", cluster.logs()
    assert "'subset'" in result["error"]
    assert f"does not match its sha256 {sha256}" in result["error"]
    assert not blob_path(cluster.root / "worker-0", sha256).exists()


def test_internal_artifact_route_checks_token(sqlite_url, artifacts, cluster_for):
    cluster = cluster_for(sqlite_url)
    cluster.start_api()
    queued = queue_data(cluster, artifacts)
    sha256 = queued.json()["artifacts"]["original"]["sha256"]
    url = f"{cluster.url}/api/v1/internal/artifacts"
    good = {"Authorization": f"Bearer {cluster.internal_token}"}
    cases = {
        "missing": {},
        "wrong": {"Authorization": "Bearer not-the-token"},
        "scheme": {"Authorization": f"Basic {cluster.internal_token}"},
    }
    for name, headers in cases.items():
        response = httpx.get(f"{url}/{sha256}", headers=headers, timeout=30)
        assert response.status_code == 401, name
        assert "DISTILGATE_INTERNAL_TOKEN" in response.json()["detail"][0]["msg"]
    malformed = httpx.get(f"{url}/ABC", headers=good, timeout=30)
    unknown = httpx.get(f"{url}/{'0' * 64}", headers=good, timeout=30)
    served = httpx.get(f"{url}/{sha256}", headers=good, timeout=30)
    assert malformed.status_code == 422
    assert unknown.status_code == 404
    assert served.status_code == 200
    assert served.content == artifacts["original_csv"].read_bytes()
    assert cluster.internal_token not in (cluster.root / "api.log").read_text()


def test_internal_artifact_route_off_without_token(sqlite_url, cluster_for):
    cluster = cluster_for(sqlite_url)
    del cluster.env["DISTILGATE_INTERNAL_TOKEN"]
    cluster.start_api()
    response = httpx.get(
        f"{cluster.url}/api/v1/internal/artifacts/{'0' * 64}",
        headers={"Authorization": f"Bearer {cluster.internal_token}"},
        timeout=30,
    )
    assert response.status_code == 404
    assert "DISTILGATE_INTERNAL_TOKEN" in response.json()["detail"][0]["msg"]


def test_queue_bound_counts_stored_gates(sqlite_url, cluster_for):
    cluster = cluster_for(sqlite_url, DISTILGATE_MAX_PENDING_JOBS="2")
    cluster.start_api()
    first = post_metrics(cluster, metrics_body("bound", 0.99), wait=0)
    second = post_metrics(cluster, metrics_body("bound", 0.99), wait=0)
    rejected = post_metrics(cluster, metrics_body("bound", 0.99), wait=0)
    assert first.status_code == 202
    assert second.status_code == 202
    assert rejected.status_code == 503, rejected.text
    assert int(rejected.headers["retry-after"]) > 0
    assert "queue is full" in rejected.json()["detail"][0]["msg"]
    assert "DISTILGATE_MAX_PENDING_JOBS" in rejected.json()["detail"][0]["msg"]
    cluster.worker()
    for accepted in (first, second):
        result = cluster.wait_for(accepted.json()["id"], TERMINAL, TIMEOUT_S)
        assert result["status"] == "passed"
    after = post_metrics(cluster, metrics_body("bound", 0.99), wait=TIMEOUT_S)
    assert after.json()["status"] == "passed"
    stored = httpx.get(
        f"{cluster.url}/api/v1/gates", params={"project": "bound"}, timeout=30
    ).json()
    assert len(stored["items"]) == 3
    assert all(gate["status"] == "passed" for gate in stored["items"])


def queue_model(cluster, artifacts) -> dict:
    """Submit a model gate without waiting; return the stored gate."""
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": artifacts["digits_test_npz"],
    }
    response = httpx.post(
        f"{cluster.url}/api/v1/gates/model",
        params={"wait": 0},
        files={role: (path.name, path.read_bytes()) for role, path in files.items()},
        data={"project": "killed"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return response.json()


def holder_of(cluster, gate_id: str):
    """Wait until a worker has started the gate; return that worker."""
    cluster.wait_for(gate_id, {"running"}, TIMEOUT_S)
    marker = f"task started gate_id={gate_id}"
    for _ in range(100):
        for worker in cluster.workers:
            if marker in worker.log_text():
                return worker
        time.sleep(0.1)
    raise AssertionError(f"no worker logged {marker!r}:\n{cluster.logs()}")


def test_killed_worker_gate_runs_again(database_url, artifacts, cluster_for):
    cluster = cluster_for(database_url, DISTILGATE_JOB_LEASE_S="4")
    cluster.start_api()
    cluster.worker()
    cluster.worker()
    gate = queue_model(cluster, artifacts)
    holder = holder_of(cluster, gate["id"])
    holder.kill()
    assert gate_row(database_url, gate["id"])["status"] == "running"
    result = cluster.wait_for(gate["id"], TERMINAL, TIMEOUT_S)
    assert result["status"] == "passed", cluster.logs()
    assert gate_row(database_url, gate["id"])["attempts"] == 2
    # The whole API log: cluster.logs() keeps only the end of each file.
    api_log = (cluster.root / "api.log").read_text()
    assert "gate queued again, its worker stopped" in api_log


def test_killed_worker_on_last_attempt_gives_error(sqlite_url, artifacts, cluster_for):
    cluster = cluster_for(
        sqlite_url, DISTILGATE_JOB_LEASE_S="4", DISTILGATE_JOB_MAX_ATTEMPTS="1"
    )
    cluster.start_api()
    cluster.worker()
    gate = queue_model(cluster, artifacts)
    holder_of(cluster, gate["id"]).kill()
    result = cluster.wait_for(gate["id"], TERMINAL, TIMEOUT_S)
    assert result["status"] == "error"
    assert result["error"].startswith(
        "interrupted: the worker evaluating the gate stopped during attempt 1 of 1"
    )
