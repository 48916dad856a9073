"""Nearest-neighbour-ball coverage of the cleaned original by the subset.

An original row is covered when a subset row lies within the distance to its
k-th nearest other original row (Naeem et al., 2020, "Reliable Fidelity and
Diversity Metrics for Generative Models"). A uniformly random subset with a
fraction f of the rows covers a row with probability about 1 - (1 - f)^(k + 1),
the chance that it contains the row or one of its k neighbours. k is chosen so that
this baseline stays a margin below the bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.evaluation.cluster_search import cluster_neighbours
from app.evaluation.clusters import Partition
from app.evaluation.neighbours import neighbours
from app.evaluation.progress import SILENT, Progress
from app.results import finite_or_none

MAX_K = 50
# Up to this many cleaned rows every row is measured. Above it a uniform sample
# of ANCHOR_ROWS rows is measured, and the coverage gets a 95% confidence
# interval. At a coverage of 95% its half-width is about 0.6 percentage points.
EXACT_ROWS = 10_000
ANCHOR_ROWS = 5_000
WORST_ROWS = 20
MAX_MAPPED_ROWS = 10_000
MAX_LISTED_COUNTS = 10_000
Z_95 = 1.959963984540054

K_RULE = (
    "k is the largest value from 1 to 50 whose random-subset score "
    "1 - (1 - f)^(k + 1) is at most min_coverage - coverage_margin, where f is "
    "the subset's distinct rows over the cleaned original's rows; 1 when no k is"
)


@dataclass(frozen=True)
class BallCoverage:
    """Covered share of the cleaned original, measured on all rows or anchors."""

    k: int
    fraction: float
    baseline: float
    keep_fraction: float
    anchors: int
    rows: int
    covered: int
    interval: tuple[float, float] | None
    median_radius: float

    @property
    def sampled(self) -> bool:
        return self.interval is not None


def random_baseline(keep_fraction: float, k: int) -> float:
    """Return 1 - (1 - f)^(k + 1), the coverage of a uniformly random subset."""
    return 1.0 - (1.0 - min(keep_fraction, 1.0)) ** (k + 1)


def choose_k(keep_fraction: float, min_coverage: float, margin: float) -> int:
    """Return the largest k in [1, 50] whose random baseline clears the margin.

    The baseline must be at most ``min_coverage - margin``. When even k = 1 has a
    higher baseline, which happens for subsets of more than about half the
    rows, k is 1 and a random subset can pass.
    """
    bar = min_coverage - margin
    fitting = [
        k for k in range(1, MAX_K + 1) if random_baseline(keep_fraction, k) <= bar
    ]
    return max(fitting) if fitting else 1


def ball_coverage(
    points: np.ndarray,
    nearest_distance: np.ndarray,
    member_kept: np.ndarray,
    *,
    k: int,
    keep_fraction: float,
    seed: int = 0,
    exact_rows: int = EXACT_ROWS,
    anchor_rows: int = ANCHOR_ROWS,
    partition: Partition | None = None,
    progress: Progress = SILENT,
) -> tuple[BallCoverage, np.ndarray]:
    """Measure the share of cleaned rows with a subset row inside their k-NN ball.

    ``nearest_distance[i]`` is the distance from cleaned row i to its nearest
    subset row. A row also counts as covered when ``member_kept[i]``: the subset
    contains a row of its duplicate group. Above ``exact_rows`` rows only
    ``anchor_rows`` sampled rows are measured. With ``partition``, a clustering
    of ``points``, the neighbour search skips clusters that cannot contain a
    neighbour, with the same result. Returns the coverage and the k-th
    neighbour distance of every measured row.
    """
    rows = len(points)
    anchors = np.arange(rows)
    if rows > exact_rows:
        rng = np.random.default_rng(seed)
        anchors = np.sort(rng.choice(rows, anchor_rows, replace=False))
    k_used = min(k, rows - 1)
    if k_used == 0:
        radius = np.zeros(len(anchors), dtype=np.float32)
    elif partition is None:
        distances, _ = neighbours(points, anchors, k_used, progress=progress)
        radius = distances[:, -1]
    else:
        distances, _ = cluster_neighbours(
            points, anchors, k_used, partition, progress=progress
        )
        radius = distances[:, -1]
    covered = (nearest_distance[anchors] <= radius) | member_kept[anchors]
    hits = int(covered.sum())
    interval = wilson_interval(hits, len(anchors)) if len(anchors) < rows else None
    coverage = BallCoverage(
        k=k_used,
        fraction=hits / len(anchors),
        baseline=random_baseline(keep_fraction, k_used),
        keep_fraction=keep_fraction,
        anchors=len(anchors),
        rows=rows,
        covered=hits,
        interval=interval,
        median_radius=float(np.median(radius)),
    )
    return coverage, radius


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Return the Wilson score 95% interval of a binomial proportion."""
    p = successes / trials
    denominator = 1.0 + Z_95**2 / trials
    centre = (p + Z_95**2 / (2 * trials)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / trials + Z_95**2 / (4 * trials**2))
    half /= denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def worst_case(
    nearest_distance: np.ndarray,
    nearest_index: np.ndarray,
    median_radius: float,
    describe: Callable[[int, int], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Report the covering radius and the worst-covered cleaned rows.

    Distances are divided by ``median_radius``, the median k-NN distance in the
    original; with a median of 0 the relative figures are None.
    ``describe(i, j)`` shows cleaned row i next to subset row j. Returns the
    metrics and the details.
    """
    worst = np.argsort(-nearest_distance, kind="stable")[:WORST_ROWS]
    largest = float(nearest_distance.max())
    p99 = float(np.quantile(nearest_distance, 0.99))
    scale = median_radius if median_radius > 0 else math.nan
    metrics = {
        "covering_radius_max": finite_or_none(largest / scale),
        "covering_radius_p99": finite_or_none(p99 / scale),
    }
    rows = []
    for row in worst:
        entry = describe(int(row), int(nearest_index[row]))
        distance = float(nearest_distance[row])
        entry["distance"] = distance
        entry["relative_distance"] = finite_or_none(distance / scale)
        rows.append(entry)
    details = {
        "rule": (
            "distance from a cleaned original row to its nearest subset row, "
            "divided by the median distance from an original row to its k-th "
            "nearest neighbour"
        ),
        "median_knn_distance": median_radius,
        "max_distance": largest,
        "p99_distance": p99,
        "max_relative": metrics["covering_radius_max"],
        "p99_relative": metrics["covering_radius_p99"],
        "worst_rows": rows,
    }
    return metrics, details


def representation(
    nearest_index: np.ndarray, group: np.ndarray, weights: np.ndarray, subset_rows: int
) -> dict[str, Any]:
    """Count the original rows each subset row represents.

    Every valid original row is represented by the subset row nearest to its
    group's cleaned row. ``group`` maps original rows to cleaned rows (-1 for
    invalid ones). The full mapping is listed up to 10,000 original rows.
    """
    counts = np.bincount(nearest_index, weights=weights, minlength=subset_rows)
    counts = counts.astype(np.int64)
    valid = np.flatnonzero(group >= 0)
    target = nearest_index[group[valid]]
    order = np.argsort(target, kind="stable")
    listed = order[:MAX_MAPPED_ROWS]
    mapping: dict[int, list[int]] = {}
    for position in listed:
        mapping.setdefault(int(target[position]), []).append(int(valid[position]))
    details: dict[str, Any] = {
        "rule": (
            "each valid original row maps to the subset row nearest its cleaned row"
        ),
        "count_summary": {
            "min": int(counts.min()),
            "median": float(np.median(counts)),
            "max": int(counts.max()),
            "subset_rows_standing_for_none": int((counts == 0).sum()),
        },
        "mapping": [
            {"subset_row": row, "original_rows": mapping[row]}
            for row in sorted(mapping)
        ],
        "mapping_complete": len(listed) == len(valid),
    }
    if subset_rows <= MAX_LISTED_COUNTS:
        details["counts"] = counts.tolist()
    return details
