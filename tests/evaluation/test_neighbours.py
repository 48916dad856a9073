"""Tests for the chunked nearest-neighbour searches against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from app.evaluation.neighbours import nearest, neighbours
from app.evaluation.progress import Progress


def brute_distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(cdist(queries.astype(np.float64), points.astype(np.float64)))


@pytest.mark.parametrize(("rows", "width"), [(7, 2), (3_000, 8), (2_500, 64)])
def test_nearest_matches_brute_force(rows: int, width: int) -> None:
    rng = np.random.default_rng(rows)
    points = rng.normal(size=(rows, width)).astype(np.float32)
    queries = rng.normal(size=(rows // 2 + 1, width)).astype(np.float32)
    distance, index = nearest(queries, points)
    expected = brute_distances(queries, points)
    assert np.array_equal(index, expected.argmin(axis=1))
    assert np.allclose(distance, expected.min(axis=1), atol=1e-5)


def test_nearest_exact_copy_has_zero_distance() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(2_000, 16)).astype(np.float32)
    distance, index = nearest(points[[5, 1_500]], points)
    assert distance.tolist() == [0.0, 0.0]
    assert index.tolist() == [5, 1_500]


@pytest.mark.parametrize(
    ("rows", "k"), [(30, 1), (30, 5), (3_000, 1), (3_000, 7), (2_100, 40)]
)
def test_neighbours_match_brute_force(rows: int, k: int) -> None:
    rng = np.random.default_rng(k)
    points = rng.normal(size=(rows, 12)).astype(np.float32)
    points[1] = points[0]
    queried = np.arange(0, rows, 3)
    distances, indices = neighbours(points, queried, k)
    expected = brute_distances(points[queried], points)
    expected[np.arange(len(queried)), queried] = np.inf
    nearest_k = np.sort(expected, axis=1)[:, :k]
    assert np.allclose(distances, nearest_k, atol=1e-4)
    assert np.allclose(
        np.take_along_axis(expected, indices, axis=1), nearest_k, atol=1e-4
    )
    assert not (indices == queried[:, None]).any()
    # Row 0 has an identical copy, which is its nearest neighbour at distance 0.
    assert indices[0, 0] == 1
    assert distances[0, 0] == 0.0


def test_neighbours_k_out_of_range() -> None:
    points = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"^k must be between 1 and 2, got 3$"):
        neighbours(points, np.arange(3), 3)


def test_nearest_reports_progress() -> None:
    reports: list[tuple[str, float]] = []
    progress = Progress(lambda stage, fraction: reports.append((stage, fraction)))
    progress.start("search")
    rng = np.random.default_rng(0)
    points = rng.normal(size=(20_000, 4)).astype(np.float32)
    nearest(points, points[:100], progress=progress)
    fractions = [fraction for _, fraction in reports]
    assert reports[0] == ("search", 0.0)
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert len(reports) > 2
