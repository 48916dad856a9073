"""Tests for the cluster-pruned neighbour search against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from app.evaluation import cluster_search
from app.evaluation.cluster_search import cluster_nearest, cluster_neighbours
from app.evaluation.clusters import Partition, partition
from app.evaluation.neighbours import nearest


def blobs(rows: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, width)) * 6.0
    labels = rng.integers(0, 12, rows)
    noise = rng.normal(size=(rows, width))
    return (centres[labels] + noise).astype(np.float32)


def brute_neighbours(points: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    expected = cdist(points[rows].astype(np.float64), points.astype(np.float64))
    expected[np.arange(len(rows)), rows] = np.inf
    return np.sort(expected, axis=1)[:, :k]


@pytest.mark.parametrize(
    ("rows", "width", "k"), [(4_000, 16, 7), (3_000, 64, 1), (2_500, 8, 30)]
)
def test_cluster_neighbours_match_brute_force(rows: int, width: int, k: int) -> None:
    points = blobs(rows, width, seed=k)
    points[5] = points[4]
    queried = np.arange(0, rows, 4)
    distances, indices = cluster_neighbours(points, queried, k, partition(points))
    expected = brute_neighbours(points, queried, k)
    assert np.allclose(distances, expected, atol=1e-4)
    found = cdist(points[queried], points)[np.arange(len(queried))[:, None], indices]
    assert np.allclose(found, expected, atol=1e-4)
    assert not (indices == queried[:, None]).any()
    # Row 4 has an identical copy, its nearest neighbour at distance 0.
    assert indices[1, 0] == 5
    assert distances[1, 0] == 0.0


def test_cluster_neighbours_uniform_rows_search_in_full() -> None:
    # Without clusters the bound prunes little, so groups fall back to a full
    # search, which must give the same neighbours.
    rng = np.random.default_rng(3)
    points = rng.random((3_000, 32), dtype=np.float32)
    queried = np.arange(0, 3_000, 4)
    distances, _ = cluster_neighbours(points, queried, 5, partition(points))
    assert np.allclose(distances, brute_neighbours(points, queried, 5), atol=1e-4)


def test_cluster_neighbours_tiny_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    # Clusters of one or two rows have fewer than k members of their own.
    # 60 queries in 5 clusters would otherwise be searched in full.
    monkeypatch.setattr(cluster_search, "MIN_QUERIES_PER_CLUSTER", 0)
    points = blobs(60, 3, seed=1)
    queried = np.arange(60)
    distances, _ = cluster_neighbours(points, queried, 10, partition(points))
    assert np.allclose(distances, brute_neighbours(points, queried, 10), atol=1e-4)


def test_cluster_neighbours_few_queries_match_brute_force() -> None:
    # 100 queries in 45 clusters are searched in full.
    points = blobs(4_000, 16, seed=2)
    queried = np.arange(0, 4_000, 40)
    distances, _ = cluster_neighbours(points, queried, 3, partition(points))
    assert np.allclose(distances, brute_neighbours(points, queried, 3), atol=1e-4)


def line(rows: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    along = (np.sort(rng.random(rows)) - 0.5) * 20.0
    across = rng.normal(scale=0.01, size=rows)
    return np.column_stack([along, across]).astype(np.float32)


def test_cluster_neighbours_line_crosses_clusters() -> None:
    # On a line, a row near a cluster's end has neighbours in the next cluster,
    # at every distance from that cluster's centre, so the shells must be exact.
    points = line(3_000)
    queried = np.arange(3_000)
    distances, _ = cluster_neighbours(points, queried, 10, partition(points))
    # float32 products may swap two neighbours whose distances differ by less
    # than 1%. A skipped shell loses whole runs of neighbours.
    expected = brute_neighbours(points, queried, 10)
    assert np.allclose(distances, expected, rtol=1e-2, atol=1e-4)


def test_cluster_neighbours_k_out_of_range() -> None:
    points = blobs(30, 2, seed=0)
    with pytest.raises(ValueError, match=r"^k must be between 1 and 29, got 30$"):
        cluster_neighbours(points, np.arange(3), 30, partition(points))


def subset_partition(points: np.ndarray, clusters: Partition) -> Partition:
    distances, labels = nearest(points, clusters.centres)
    return Partition("test", clusters.centres, labels, distances)


@pytest.mark.parametrize(("rows", "width"), [(4_000, 16), (3_000, 64)])
def test_cluster_nearest_matches_nearest(rows: int, width: int) -> None:
    queries = blobs(rows, width, seed=width)
    clusters = partition(queries)
    points = queries[::7].copy()
    # A duplicate point: ties go to the lower index, as in ``nearest``.
    points[3] = points[2]
    distance, index = cluster_nearest(
        queries, clusters.labels, points, subset_partition(points, clusters)
    )
    expected_distance, expected_index = nearest(queries, points)
    assert np.array_equal(index, expected_index)
    assert np.array_equal(distance, expected_distance)
    assert not (index == 3).any()


def test_cluster_nearest_line_crosses_clusters() -> None:
    queries = line(3_000)
    clusters = partition(queries)
    points = queries[::7].copy()
    distance, index = cluster_nearest(
        queries, clusters.labels, points, subset_partition(points, clusters)
    )
    expected_distance, expected_index = nearest(queries, points)
    assert np.array_equal(index, expected_index)
    assert np.array_equal(distance, expected_distance)


def test_cluster_nearest_empty_clusters_search_in_full() -> None:
    # Points drawn from one blob leave the other clusters without a point.
    queries = blobs(2_000, 8, seed=2)
    clusters = partition(queries)
    points = queries[clusters.labels == clusters.labels[0]][:40]
    distance, index = cluster_nearest(
        queries, clusters.labels, points, subset_partition(points, clusters)
    )
    expected = cdist(queries.astype(np.float64), points.astype(np.float64))
    assert np.array_equal(index, expected.argmin(axis=1))
    assert np.allclose(distance, expected.min(axis=1), atol=1e-4)
