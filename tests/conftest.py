"""Fixtures shared by the whole suite: databases, live servers, real artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings

from tests.databases import database_url_for
from tests.servers import LiveServer, live_server

# CI runs the property tests on a fixed sequence of examples, so a landing never
# depends on which inputs a random run happened to try. Runs elsewhere stay
# random and keep finding new cases.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on SQLite, then on PostgreSQL."""
    with database_url_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def artifacts(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> dict[str, Path]:
    """Real example artifacts: digits models distilled with torch, and datasets.

    pytest-xdist workers share one build: the first worker trains the models
    under a file lock and the others reuse its output.
    """
    from examples.artifacts import build_all

    if worker_id == "master":
        return build_all(tmp_path_factory.mktemp("artifacts"), quick=True)
    shared = tmp_path_factory.getbasetemp().parent / "artifacts"
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared) + ".lock"):
        return build_all(shared, quick=True, reuse=True)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A running DistilGate service, on SQLite then on PostgreSQL."""
    root = tmp_path_factory.mktemp(f"server-{request.param}")
    with live_server(request.param, root) as live:
        yield live
