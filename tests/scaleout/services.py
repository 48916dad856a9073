"""A Redis server and a PostgreSQL cluster of a test's own, to stop and restart.

Fault tests restart these, never the machine's shared Redis or PostgreSQL
that other tests use. Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest
import redis

REQUIRE_POSTGRES_ENV = "DISTILGATE_REQUIRE_POSTGRES"


class RedisServer:
    """``redis-server`` without persistence on a fixed loopback port."""

    def __init__(self, port: int, log_path: Path):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
                + ["--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"redis-server not ready: {self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server; everything it held is gone, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class PostgresCluster:
    """A PostgreSQL cluster made by ``initdb`` in a temporary directory.

    It runs as the ``postgres`` user on 127.0.0.1:``port`` and trusts local
    connections. ``stop`` and ``start`` restart it with its data kept.
    """

    def __init__(self, port: int):
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="distilgate-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._bin = _postgres_bin()

    def _run(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def create(self) -> PostgresCluster:
        shutil.chown(self.directory, "postgres", "postgres")
        self._run(f"{self._bin}/initdb", "-D", str(self.data), "-A", "trust")
        return self.start()

    def start(self) -> PostgresCluster:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            f"{self._bin}/pg_ctl", "start", "-w", "-D", str(self.data),
            "-l", str(self.log_path), "-o", options,
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self._bin}/pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def new_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def _postgres_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or shutil.which("runuser") is None:
        reason = "initdb (/usr/lib/postgresql/*/bin) or runuser is not available"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {reason}")
        pytest.skip(reason)
    return str(Path(found[-1]).parent)
