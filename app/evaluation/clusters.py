"""k-means clusters of the original: a map of its regions and which the subset lost.

The same partition also limits the near-duplicate search to rows of one cluster
and its borders (see ``app.evaluation.cleaning``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from app.evaluation.neighbours import nearest
from app.evaluation.progress import SILENT, Progress

MIN_CLUSTERS, MAX_CLUSTERS = 2, 256
# k-means is fitted on at most this many rows, sampled uniformly: at most 256
# clusters, so about 40 rows or more per cluster.
FIT_ROWS = 10_000
# Lloyd iterations from random initial centres. The partition only has to be
# reproducible and compact, so it need not converge. On the 64-dimensional
# Gaussian blobs of bench/data_gate.py, 10 iterations come within 0.2% of the
# mean squared distance to the centre of a converged k-means++ fit. They take
# under a third of its time.
MAX_ITERATIONS = 10
CLUSTER_RULE = "k = clamp(round(sqrt(rows / 2)), 2, 256), at most distinct rows"
MAX_LOST_CLUSTERS = 50
EXAMPLES_PER_CLUSTER = 3


@dataclass(frozen=True)
class Partition:
    """k-means centres and, for every row, its nearest centre and the distance."""

    algorithm: str
    centres: np.ndarray
    labels: np.ndarray
    distances: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.centres)


def cluster_count(rows: int, distinct_rows: int) -> int:
    """Return k = clamp(round(sqrt(rows / 2)), 2, 256), at most ``distinct_rows``."""
    k = round(math.sqrt(rows / 2))
    return min(max(k, MIN_CLUSTERS), MAX_CLUSTERS, distinct_rows)


def partition(
    points: np.ndarray, *, seed: int = 0, progress: Progress = SILENT
) -> Partition:
    """Cluster ``points`` with k-means; k follows ``cluster_count``.

    ``KMeans`` (random initial rows, random_state=seed, at most 10 Lloyd
    iterations) is fitted on all rows, or on a uniform sample of 10,000 when
    there are more. Every row is then labelled with its nearest centre.
    """
    rows = len(points)
    sample = points
    if rows > FIT_ROWS:
        rng = np.random.default_rng(seed)
        sample = points[np.sort(rng.choice(rows, FIT_ROWS, replace=False))]
    k = cluster_count(rows, distinct_count(sample))
    model = KMeans(
        n_clusters=k,
        init="random",
        n_init=1,
        max_iter=MAX_ITERATIONS,
        random_state=seed,
    ).fit(sample)
    progress.update(0.5)
    centres = np.ascontiguousarray(model.cluster_centers_, dtype=np.float32)
    distances, labels = nearest(points, centres)
    algorithm = "KMeans" if rows <= FIT_ROWS else f"KMeans on {FIT_ROWS:,} rows"
    return Partition(algorithm, centres, labels, distances)


def distinct_count(points: np.ndarray) -> int:
    """Count distinct rows by a 64-bit hash of their values."""
    hashes = np.zeros(len(points), dtype=np.uint64)
    for column in range(points.shape[1]):
        combine_hash(hashes, pd.util.hash_array(points[:, column]))
    return len(np.unique(hashes))


def combine_hash(hashes: np.ndarray, column: np.ndarray) -> None:
    """Mix one column's uint64 hashes into the row hashes, in place."""
    # Unsigned arrays wrap around on overflow, which is what a hash mix needs.
    np.multiply(hashes, np.uint64(0x100000001B3), out=hashes)
    np.bitwise_xor(hashes, column, out=hashes)


def cluster_view(
    labels: np.ndarray,
    weights: np.ndarray,
    subset_labels: np.ndarray,
    n_clusters: int,
    example: Callable[[int], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Count the original rows in clusters the subset reaches and list lost clusters.

    ``labels`` and ``weights`` give each cleaned original row's cluster and the
    number of original rows it represents. ``example(i)`` describes cleaned row ``i``.
    Returns the metrics and the details.
    """
    sizes = np.bincount(labels, weights=weights, minlength=n_clusters)
    reached = np.zeros(n_clusters, dtype=bool)
    reached[subset_labels] = True
    occupied = sizes > 0
    lost = np.flatnonzero(occupied & ~reached)
    lost = lost[np.argsort(-sizes[lost], kind="stable")]
    rows_covered = int(sizes[reached].sum())
    metrics = {
        "clusters": int(occupied.sum()),
        "clusters_covered": int((occupied & reached).sum()),
        "original_rows_in_covered_clusters": rows_covered,
    }
    details = {
        "n_clusters": n_clusters,
        "rule": CLUSTER_RULE,
        "cluster_coverage": rows_covered / float(sizes.sum()),
        "lost_clusters": [
            _lost_cluster(labels, int(c), int(sizes[c]), example)
            for c in lost[:MAX_LOST_CLUSTERS]
        ],
        "lost_clusters_listed": int(min(len(lost), MAX_LOST_CLUSTERS)),
    }
    return metrics, details


def _lost_cluster(
    labels: np.ndarray,
    cluster: int,
    size: int,
    example: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    members = np.flatnonzero(labels == cluster)[:EXAMPLES_PER_CLUSTER]
    return {
        "cluster": cluster,
        "original_rows": size,
        "examples": [example(int(i)) for i in members],
    }
