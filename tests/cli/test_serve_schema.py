"""`distilgate serve` with DISTILGATE_MIGRATE_ON_START=false, as a real process."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0


@pytest.fixture
def env(database_url, tmp_path):
    return {
        **os.environ,
        "DISTILGATE_DATABASE_URL": database_url,
        "DISTILGATE_DATA_DIR": str(tmp_path / "data"),
        "DISTILGATE_MIGRATE_ON_START": "false",
    }


def run_cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for_health(url, process):
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def test_serve_without_migrate_rejects_empty_database(env):
    result = run_cli(env, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "has no DistilGate schema" in result.stderr
    assert "run `distilgate db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_migrate_starts_after_db_upgrade(env, tmp_path):
    upgrade = run_cli(env, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        response = wait_for_health(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert response is not None, output
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
