"""`distilgate worker` refusing bad settings, as a real process."""

import os
import subprocess
import sys

import pytest

from tests.servers import free_port


def run_worker(tmp_path, **settings):
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DISTILGATE_EXECUTOR", "DISTILGATE_BROKER_URL")
    }
    env = {
        **inherited,
        "DISTILGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}",
        "DISTILGATE_DATA_DIR": str(tmp_path / "data"),
        **settings,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_needs_celery_executor(tmp_path):
    result = run_worker(tmp_path)
    assert result.returncode == 2
    assert "DISTILGATE_EXECUTOR is 'inprocess'" in result.stderr
    assert "set DISTILGATE_EXECUTOR=celery" in result.stderr


def test_worker_rejects_unknown_executor(tmp_path):
    result = run_worker(tmp_path, DISTILGATE_EXECUTOR="kubernetes")
    assert result.returncode == 2
    assert "DISTILGATE_EXECUTOR='kubernetes' is invalid" in result.stderr
    assert "'inprocess' or 'celery'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379/0", "127.0.0.1:6379", "redis:/127.0.0.1"]
)
def test_worker_rejects_broker_url_scheme(tmp_path, url):
    result = run_worker(
        tmp_path, DISTILGATE_EXECUTOR="celery", DISTILGATE_BROKER_URL=url
    )
    assert result.returncode == 2
    assert f"DISTILGATE_BROKER_URL {url!r} is not a supported URL" in result.stderr
    assert "redis://host:6379/0" in result.stderr


def test_worker_reports_unreachable_broker(tmp_path):
    url = f"redis://user:s3cret-password@127.0.0.1:{free_port()}/0"
    result = run_worker(
        tmp_path, DISTILGATE_EXECUTOR="celery", DISTILGATE_BROKER_URL=url
    )
    assert result.returncode == 2
    assert "is unreachable" in result.stderr
    assert "redis://user:***@127.0.0.1" in result.stderr
    assert "s3cret-password" not in result.stderr
