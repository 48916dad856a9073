"""Tests for nearest-neighbour-ball coverage, its k rule and its worst case."""

from __future__ import annotations

import numpy as np
import pytest

from app.evaluation.coverage import (
    ball_coverage,
    choose_k,
    random_baseline,
    representation,
    wilson_interval,
    worst_case,
)
from app.evaluation.neighbours import nearest


def test_random_baseline_formula() -> None:
    assert random_baseline(0.2, 7) == pytest.approx(1 - 0.8**8)
    assert random_baseline(1.0, 3) == 1.0
    assert random_baseline(1.5, 1) == 1.0


@pytest.mark.parametrize(
    ("fraction", "k"),
    [(0.2, 7), (0.1, 17), (0.05, 35), (0.4, 2), (0.7, 1), (0.001, 50)],
)
def test_choose_k_largest_below_margin(fraction: float, k: int) -> None:
    assert choose_k(fraction, 0.95, 0.10) == k
    if k < 50 and random_baseline(fraction, 1) <= 0.85:
        assert random_baseline(fraction, k) <= 0.85 < random_baseline(fraction, k + 1)


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(95, 100)
    assert low == pytest.approx(0.8883, abs=1e-4)
    assert high == pytest.approx(0.9785, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def line(count: int) -> np.ndarray:
    return np.arange(count, dtype=np.float32)[:, None]


def test_ball_coverage_by_hand() -> None:
    # Points 0..9 on a line, and the subset contains 0 and 9. With k = 1 a point is
    # covered when a subset point is no farther than its nearest neighbour
    # (distance 1): points 0, 1, 8 and 9.
    points = line(10)
    distance, _ = nearest(points, points[[0, 9]])
    kept = np.zeros(10, dtype=bool)
    coverage, radius = ball_coverage(points, distance, kept, k=1, keep_fraction=0.2)
    assert coverage.fraction == pytest.approx(0.4)
    assert coverage.covered == 4
    assert coverage.interval is None
    assert coverage.baseline == pytest.approx(1 - 0.8**2)
    assert radius.tolist() == [1.0] * 10


def test_ball_coverage_credits_kept_duplicates() -> None:
    points = line(10)
    distance, _ = nearest(points, points[[0, 9]])
    kept = np.zeros(10, dtype=bool)
    kept[5] = True
    coverage, _ = ball_coverage(points, distance, kept, k=1, keep_fraction=0.2)
    assert coverage.covered == 5


def test_ball_coverage_samples_large_originals() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(3_000, 3)).astype(np.float32)
    distance, _ = nearest(points, points[:600])
    kept = np.zeros(len(points), dtype=bool)
    exact, _ = ball_coverage(points, distance, kept, k=4, keep_fraction=0.2)
    sampled, radius = ball_coverage(
        points,
        distance,
        kept,
        k=4,
        keep_fraction=0.2,
        exact_rows=1_000,
        anchor_rows=800,
    )
    assert sampled.anchors == 800
    assert len(radius) == 800
    assert sampled.interval is not None
    low, high = sampled.interval
    assert low <= exact.fraction <= high
    assert low <= sampled.fraction <= high


def test_ball_coverage_single_row() -> None:
    points = line(1)
    coverage, _ = ball_coverage(
        points,
        np.zeros(1, dtype=np.float32),
        np.zeros(1, dtype=bool),
        k=5,
        keep_fraction=1.0,
    )
    assert coverage.k == 0
    assert coverage.fraction == 1.0


def test_worst_case_lists_farthest_rows() -> None:
    distance = np.array([0.0, 3.0, 1.0, 6.0], dtype=np.float32)
    index = np.array([0, 1, 0, 1])
    metrics, details = worst_case(
        distance, index, 2.0, lambda row, subset_row: {"pair": [row, subset_row]}
    )
    assert metrics["covering_radius_max"] == 3.0
    assert [row["pair"] for row in details["worst_rows"]] == [
        [3, 1],
        [1, 1],
        [2, 0],
        [0, 0],
    ]
    assert details["worst_rows"][0]["relative_distance"] == 3.0


def test_worst_case_lists_twenty_rows() -> None:
    distance = np.random.default_rng(6).permutation(100).astype(np.float32)
    index = np.zeros(100, dtype=np.int64)
    metrics, details = worst_case(distance, index, 1.0, lambda row, _: {"row": row})
    listed = [row["distance"] for row in details["worst_rows"]]
    assert listed == [float(d) for d in range(99, 79, -1)]
    assert metrics["covering_radius_max"] == 99.0
    assert metrics["covering_radius_p99"] == pytest.approx(98.01)


def test_worst_case_zero_median_gives_none() -> None:
    metrics, details = worst_case(
        np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.int64), 0.0, lambda i, j: {}
    )
    assert metrics == {"covering_radius_max": None, "covering_radius_p99": None}
    assert details["worst_rows"][0]["relative_distance"] is None


def test_representation_counts_every_valid_row() -> None:
    # Original rows 0..4 form cleaned rows 0, 1, 2 (row 3 duplicates row 0 and
    # row 4 is invalid). Cleaned rows 0 and 1 are nearest subset row 1.
    group = np.array([0, 1, 2, 0, -1])
    weights = np.array([2, 1, 1])
    nearest_index = np.array([1, 1, 0])
    details = representation(nearest_index, group, weights, 3)
    assert details["counts"] == [1, 3, 0]
    assert details["mapping"] == [
        {"subset_row": 0, "original_rows": [2]},
        {"subset_row": 1, "original_rows": [0, 1, 3]},
    ]
    assert details["mapping_complete"] is True
    assert details["count_summary"]["subset_rows_standing_for_none"] == 1
