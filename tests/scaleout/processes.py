"""Real API and `distilgate worker` processes on Redis, for scale-out tests.

A ``Cluster`` is one API server (uvicorn, executor=celery) and any number of
workers, all on one database and a Celery queue of their own, so clusters of
tests running in parallel never take each other's gates. Every process is
started on 127.0.0.1 and stopped by the cluster.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
import redis

from tests.servers import LiveServer

REDIS_ENV = "DISTILGATE_TEST_REDIS_URL"
REQUIRE_ENV = "DISTILGATE_REQUIRE_REDIS"
# Redis databases that scale-out tests use for the broker and the results.
BROKER_DB = 11
RESULTS_DB = 12
TERMINAL = {"passed", "failed", "error", "inconclusive", "waived"}


def redis_base_url() -> str:
    """Return the test Redis URL without a database; skip or fail without one."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {REDIS_ENV} is not set")
        pytest.skip(f"set {REDIS_ENV} (for example redis://127.0.0.1:6379) to run")
    url = url.rstrip("/")
    try:
        redis.Redis.from_url(f"{url}/{BROKER_DB}", socket_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"Redis at {url} is required: {exc}")
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    return url


class WorkerProcess:
    """A `distilgate worker` child process in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        pool: str = "prefork",
        args: list[str] | None = None,
    ):
        self.env = env
        self.log_path = log_path
        self.pool = pool
        # The worker's command-line arguments; by default one process per pool.
        self.args = args or [
            "worker",
            "--pool",
            pool,
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def start(self, timeout_s: float = 60.0) -> WorkerProcess:
        """Start the worker and wait until Celery logs that it is ready."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        command = [sys.executable, "-m", "app.cli.main", *self.args]
        self.process = subprocess.Popen(
            command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_text()}")
            if " ready." in self.log_text()[offset:]:
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"worker not ready: {self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask for a warm shutdown (SIGTERM); kill the group if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the worker and its pool and model processes at once."""
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Cluster:
    """An API server and its workers on one database and one Celery queue.

    ``worker()`` starts a worker with its own data directory (no shared disk;
    it downloads artifacts from the API) or, with ``shared_disk=True``, the
    API's. ``extra_env`` applies to every process.
    """

    def __init__(
        self,
        database_url: str,
        root: Path,
        redis_url: str,
        extra_env: dict[str, str] | None = None,
    ):
        self.database_url = database_url
        self.root = root
        self.queue = f"distilgate-test-{uuid.uuid4().hex[:12]}"
        self.internal_token = secrets.token_urlsafe(24)
        self.redis_url = redis_url
        self.env = {
            "DISTILGATE_EXECUTOR": "celery",
            "DISTILGATE_BROKER_URL": f"{redis_url}/{BROKER_DB}",
            "DISTILGATE_RESULT_BACKEND": f"{redis_url}/{RESULTS_DB}",
            "DISTILGATE_TASK_QUEUE": self.queue,
            "DISTILGATE_INTERNAL_TOKEN": self.internal_token,
            "DISTILGATE_SWEEP_INTERVAL_S": "1",
            **(extra_env or {}),
        }
        self.api_data_dir = root / "api-data"
        self.api: LiveServer | None = None
        self.workers: list[WorkerProcess] = []

    def start_api(self) -> LiveServer:
        self.api = LiveServer(
            self.database_url,
            self.api_data_dir,
            self.root / "api.log",
            extra_env=self.env,
        ).start()
        return self.api

    @property
    def url(self) -> str:
        assert self.api is not None, "start_api() first"
        return self.api.url

    def worker(
        self, *, shared_disk: bool = False, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """Start one more worker and return it once it is ready."""
        index = len(self.workers)
        data_dir = self.api_data_dir if shared_disk else self.root / f"worker-{index}"
        worker_env = {
            **os.environ,
            **self.env,
            "DISTILGATE_DATABASE_URL": self.database_url,
            "DISTILGATE_DATA_DIR": str(data_dir),
            "DISTILGATE_ARTIFACT_API_URL": self.url,
            **(env or {}),
        }
        process = WorkerProcess(worker_env, self.root / f"worker-{index}.log")
        self.workers.append(process)
        return process.start()

    def wait_for(self, gate_id: str, statuses: set[str], timeout_s: float) -> dict:
        """Poll a gate until its status is one of ``statuses``; return it."""
        deadline = time.monotonic() + timeout_s
        body: dict = {}
        while time.monotonic() < deadline:
            response = httpx.get(f"{self.url}/api/v1/gates/{gate_id}", timeout=30)
            body = response.json()
            if body.get("status") in statuses:
                return body
            time.sleep(0.2)
        raise AssertionError(
            f"gate {gate_id} not in {sorted(statuses)} after {timeout_s} s: {body}"
        )

    def logs(self) -> str:
        """Return every process log, for assertion messages."""
        parts = []
        for path in sorted(self.root.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api is not None:
            self.api.stop()
        with suppress(redis.RedisError):
            broker = redis.Redis.from_url(f"{self.redis_url}/{BROKER_DB}")
            broker.delete(self.queue)
