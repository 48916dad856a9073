"""Fixtures of the scale-out tests: Redis, and clusters of real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scaleout.processes import Cluster, redis_base_url

ClusterFactory = Callable[..., Cluster]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Base URL of the test Redis; the test skips (or fails in CI) without it."""
    return redis_base_url()


@pytest.fixture
def cluster_for(redis_url: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build clusters on a database URL; every process stops after the test."""
    clusters: list[Cluster] = []

    def build(database_url: str, **extra_env: str) -> Cluster:
        root = tmp_path / f"cluster-{len(clusters)}"
        root.mkdir()
        cluster = Cluster(database_url, root, redis_url, extra_env)
        clusters.append(cluster)
        return cluster

    yield build
    for cluster in clusters:
        cluster.stop()
