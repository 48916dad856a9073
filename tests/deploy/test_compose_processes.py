"""The compose file's services, started as local processes, evaluate gates.

The test needs no Docker engine: it starts what docker/compose.yaml
starts, the api service's command and the worker service's command once per
replica, with the environment the compose file gives them. Only the addresses
change: the compose host names become the machine's PostgreSQL and Redis and a
free loopback port, and the artifact volume becomes a temporary folder that the
api and the workers share, as they share the volume.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.databases import fresh_postgres_database
from tests.deploy.compose_spec import ServiceSpec, distilgate_services
from tests.scaleout.processes import WorkerProcess, redis_base_url
from tests.servers import free_port

pytestmark = pytest.mark.slow

# Redis databases of this test only, apart from those of tests/scaleout.
BROKER_DB, RESULTS_DB = 13, 14
TERMINAL = {"passed", "failed", "error", "inconclusive", "waived"}


def local_environment(
    spec: ServiceSpec, *, database_url: str, redis_url: str, api_url: str, data: Path
) -> dict[str, str]:
    """Return the service's compose environment with local addresses."""
    environment = dict(spec.environment)
    local = {
        "DISTILGATE_DATABASE_URL": database_url,
        "DISTILGATE_BROKER_URL": f"{redis_url}/{BROKER_DB}",
        "DISTILGATE_RESULT_BACKEND": f"{redis_url}/{RESULTS_DB}",
        "DISTILGATE_ARTIFACT_API_URL": api_url,
        "DISTILGATE_DATA_DIR": str(data),
    }
    for name, value in local.items():
        assert name in environment, f"compose no longer sets {name}"
        environment[name] = value
    if "DISTILGATE_PUBLIC_URL" in environment:
        environment["DISTILGATE_PUBLIC_URL"] = api_url
    return {**os.environ, **environment}


def local_api_args(spec: ServiceSpec, port: int) -> list[str]:
    """Return the api command's arguments bound to loopback on ``port``."""
    assert spec.argv[0] == "distilgate", spec.argv
    args = spec.argv[1:]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    return args


@pytest.fixture
def compose_stack(tmp_path: Path) -> Iterator[tuple[str, str, list[WorkerProcess]]]:
    redis_url = redis_base_url()
    redis.Redis.from_url(f"{redis_url}/{BROKER_DB}").flushdb()
    admin = secrets.token_urlsafe(24)
    variables = {
        "POSTGRES_PASSWORD": "unused-locally",
        "DISTILGATE_INTERNAL_TOKEN": secrets.token_urlsafe(24),
        "DISTILGATE_ADMIN_TOKEN": admin,
    }
    specs = distilgate_services(variables)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    with fresh_postgres_database() as database_url:
        addresses = {
            "database_url": database_url,
            "redis_url": redis_url,
            "api_url": api_url,
            "data": tmp_path / "artifacts",
        }
        api_log = (tmp_path / "api.log").open("ab")
        api = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", *local_api_args(specs["api"], port)],
            env=local_environment(specs["api"], **addresses),
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        workers: list[WorkerProcess] = []
        try:
            wait_healthy(api_url, api, tmp_path / "api.log")
            worker = specs["worker"]
            assert worker.argv[:2] == ["distilgate", "worker"], worker.argv
            for replica in range(worker.replicas):
                process = WorkerProcess(
                    local_environment(worker, **addresses),
                    tmp_path / f"worker-{replica}.log",
                    args=worker.argv[1:],
                )
                workers.append(process.start(timeout_s=120))
            yield api_url, admin, workers
        finally:
            for process in workers:
                process.stop()
            api.terminate()
            api.wait(timeout=30)
            api_log.close()
            redis.Redis.from_url(f"{redis_url}/{BROKER_DB}").flushdb()


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"api not healthy: {log.read_text()}")


def wait_terminal(url: str, admin: str, gate_id: str) -> dict:
    headers = {"Authorization": f"Bearer {admin}"}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = httpx.get(
            f"{url}/api/v1/gates/{gate_id}",
            params={"wait": 10},
            headers=headers,
            timeout=30,
        ).json()
        if body["status"] in TERMINAL:
            return body
    raise AssertionError(f"gate {gate_id} not finished: {body}")


def test_compose_services_evaluate_gates(compose_stack) -> None:
    url, admin, workers = compose_stack
    headers = {"Authorization": f"Bearer {admin}"}
    table = "a,b,label\n" + "".join(f"{i % 5},{i % 7},{i % 2}\n" for i in range(60))
    data = httpx.post(
        f"{url}/api/v1/gates/data",
        params={"wait": 0},
        headers=headers,
        data={"label_column": "label"},
        files={
            "original": ("original.csv", table.encode()),
            "subset": ("subset.csv", table.encode()),
        },
        timeout=60,
    )
    assert data.status_code in (200, 202), data.text
    metrics = httpx.post(
        f"{url}/api/v1/gates/metrics",
        params={"wait": 0},
        headers=headers,
        json={
            "kind": "data",
            "original": {"coverage": 0.9},
            "subset": {"coverage": 0.89},
        },
        timeout=60,
    )
    assert metrics.status_code in (200, 202), metrics.text

    for response in (data, metrics):
        gate_id = response.json()["id"]
        result = wait_terminal(url, admin, gate_id)
        assert result["status"] == "passed", result
        ran_on = [w for w in workers if gate_id in w.log_text()]
        assert ran_on, f"no worker log names gate {gate_id}"
