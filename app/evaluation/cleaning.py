"""Cleaning of the original before coverage is measured.

Three kinds of rows leave the measured set:

- invalid rows, flagged by row rules: by default rows whose every cell is
  missing and rows with an infinite number;
- exact duplicates, rows equal in every column to an earlier row;
- near-duplicates, rows of the same scenario tuple closer in feature space than
  ``ratio`` times the median distance from a row to its nearest other row.

Each duplicate group keeps its first row. Rows are compared by a 64-bit hash of
their values, so two different rows of a table of a million rows are taken for
duplicates with a probability below 1e-7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from app.evaluation.cluster_search import cluster_neighbours
from app.evaluation.clusters import Partition, combine_hash
from app.evaluation.features import column_kind
from app.evaluation.neighbours import (
    chunk_rows,
    parallel_map,
    row_distances,
    squared_norms,
    with_ones,
)
from app.evaluation.progress import SILENT, Progress
from app.results import finite_or_none

# Rows whose nearest-neighbour distance estimates the typical row spacing.
SPACING_SAMPLE = 1_000
MAX_EXAMPLES = 10
MAX_REMOVED_LISTED = 5


class RowRule(Protocol):
    """A reason to drop rows of the original before measuring coverage.

    Returns a boolean mask of the rows it rejects. An image pipeline can add
    rules here, for example for unreadable or blurred images.
    """

    name: str

    def __call__(self, frame: pd.DataFrame) -> np.ndarray: ...


class AllMissing:
    """Rows in which every cell is missing."""

    name = "all_missing"

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        mask = np.ones(len(frame), dtype=bool)
        for column in frame.columns:
            mask &= frame[column].isna().to_numpy()
        return mask


class NonFinite:
    """Rows with an infinite value in a numeric column."""

    name = "non_finite"

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        mask = np.zeros(len(frame), dtype=bool)
        for column in frame.columns:
            if frame[column].dtype.kind == "f":
                mask |= np.isinf(frame[column].to_numpy())
            elif column_kind(frame[column]) == "numeric":
                values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
                mask |= np.isinf(values)
        return mask


DEFAULT_RULES: tuple[RowRule, ...] = (AllMissing(), NonFinite())


class ListedRows:
    """Rows found invalid before cleaning, such as a number column's text cells."""

    def __init__(self, name: str, rows: np.ndarray) -> None:
        self.name = name
        self._rows = rows

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        mask = np.zeros(len(frame), dtype=bool)
        mask[self._rows] = True
        return mask


@dataclass(frozen=True)
class ExactPass:
    """Valid rows and their exact-duplicate groups."""

    invalid: dict[str, np.ndarray]
    # Position of the first row of each distinct valid row, in order.
    distinct: np.ndarray
    # For every original row, its index into ``distinct``; -1 when invalid.
    group: np.ndarray


@dataclass(frozen=True)
class NearPass:
    """Near-duplicate groups of the distinct rows."""

    threshold: float | None
    spacing: float | None
    spacing_rows: int
    # For every distinct row, the index of its group's first distinct row.
    representative: np.ndarray


def row_hashes(
    original: pd.DataFrame, subset: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Hash every row of both tables so that equal rows get equal hashes.

    Missing values (None, NaN, NaT) hash alike, and a column that is integer in
    one table and float in the other is compared as float, so ``1`` matches
    ``1.0``. Returns the original's and the subset's hashes; the second is empty
    without a subset.
    """
    hashes = np.zeros(len(original), dtype=np.uint64)
    subset_hashes = np.zeros(0 if subset is None else len(subset), dtype=np.uint64)
    for column in original.columns:
        other = None if subset is None else subset[column]
        first, second = _aligned(original[column], other)
        combine_hash(hashes, pd.util.hash_array(first))
        if second is not None:
            combine_hash(subset_hashes, pd.util.hash_array(second))
    return hashes, subset_hashes


def _aligned(
    column: pd.Series, other: pd.Series | None
) -> tuple[np.ndarray, np.ndarray | None]:
    kinds = {column.dtype.kind} | ({other.dtype.kind} if other is not None else set())
    if kinds <= {"i", "u"} or kinds <= {"M"} or kinds <= {"m"} or kinds <= {"b"}:
        target = "same"
    elif kinds <= {"i", "u", "f", "b"}:
        target = "float"
    else:
        target = "object"

    def convert(values: pd.Series) -> np.ndarray:
        if target == "float":
            return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if target == "object":
            return np.asarray(values.astype(object).to_numpy())
        return np.asarray(values.to_numpy())

    return convert(column), None if other is None else convert(other)


def exact_pass(
    original: pd.DataFrame, hashes: np.ndarray, rules: Sequence[RowRule]
) -> ExactPass:
    """Apply the row rules, then group the valid rows by exact equality."""
    invalid = {rule.name: np.flatnonzero(rule(original)) for rule in rules}
    valid = np.ones(len(original), dtype=bool)
    for rows in invalid.values():
        valid[rows] = False
    positions = np.flatnonzero(valid)
    codes, _ = pd.factorize(hashes[positions])
    _, first = np.unique(codes, return_index=True)
    group = np.full(len(original), -1, dtype=np.int64)
    group[positions] = codes
    return ExactPass(invalid, positions[first], group)


def near_pass(
    points: np.ndarray,
    tuples: np.ndarray,
    ratio: float,
    partition: Partition | None,
    *,
    seed: int = 0,
    progress: Progress = SILENT,
) -> NearPass:
    """Link distinct rows closer than ``ratio`` times the typical row spacing.

    The spacing is the median distance from a row to its nearest other row,
    measured on up to 1,000 sampled rows. Only rows with equal ``tuples`` (their
    scenario tuple) are linked. Rows joined by a chain of links form one group,
    represented by its first row.
    """
    representative = np.arange(len(points))
    if len(points) < 2 or partition is None or ratio <= 0.0:
        return NearPass(None, None, 0, representative)
    spacing, sampled = _median_spacing(points, partition, seed)
    threshold = ratio * spacing
    progress.update(0.2)
    if threshold <= 0.0:
        return NearPass(threshold, spacing, sampled, representative)
    first, second = _close_pairs(points, partition, threshold, progress)
    same = tuples[first] == tuples[second]
    graph = sparse.coo_matrix(
        (np.ones(int(same.sum())), (first[same], second[same])),
        shape=(len(points), len(points)),
    )
    _, component = connected_components(graph, directed=False)
    lowest = np.full(component.max() + 1, len(points), dtype=np.int64)
    np.minimum.at(lowest, component, representative)
    return NearPass(threshold, spacing, sampled, lowest[component])


def _median_spacing(
    points: np.ndarray, partition: Partition, seed: int
) -> tuple[float, int]:
    rows = np.arange(len(points))
    if len(rows) > SPACING_SAMPLE:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, SPACING_SAMPLE, replace=False))
    distances, _ = cluster_neighbours(points, rows, 1, partition)
    return float(np.median(distances[:, 0])), len(rows)


def _close_pairs(
    points: np.ndarray, partition: Partition, radius: float, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """Find every pair of rows closer than ``radius``.

    A row y within ``radius`` of a row x in cluster c satisfies
    d(y, c) <= d(y, own centre of y) + 2 * radius by the triangle inequality.
    So each cluster's members are compared with its members and with the rows
    of other clusters that pass this test, which finds every close pair.

    NOTE: on data without clusters, such as rows uniform in a 64-dimensional
    cube, almost every row passes the test for every cluster. The search then
    compares nearly all pairs, about six times the rest of the gate
    (bench/data_gate.py --case uniform).
    """
    visitor_rows, visitor_clusters = _visitors(points, partition, radius)
    members = np.argsort(partition.labels, kind="stable")
    bounds = np.searchsorted(
        partition.labels[members], np.arange(partition.n_clusters + 1)
    )
    order = np.argsort(visitor_clusters, kind="stable")
    visitor_bounds = np.searchsorted(
        visitor_clusters[order], np.arange(partition.n_clusters + 1)
    )

    def search(cluster: int) -> tuple[np.ndarray, np.ndarray]:
        own = members[bounds[cluster] : bounds[cluster + 1]]
        guests = visitor_rows[
            order[visitor_bounds[cluster] : visitor_bounds[cluster + 1]]
        ]
        candidates = np.concatenate([own, guests])
        centre = partition.centres[cluster]
        return _pairs_within(points, centre, own, candidates, radius)

    found = []
    for pairs in parallel_map(search, range(partition.n_clusters)):
        found.append(pairs)
        progress.update(0.2 + 0.8 * len(found) / partition.n_clusters)
    first = np.concatenate([pair[0] for pair in found])
    second = np.concatenate([pair[1] for pair in found])
    return first, second


def _visitors(
    points: np.ndarray, partition: Partition, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (row, cluster) for rows close enough to a cluster other than their own."""
    centres = partition.centres
    squared_centres = np.einsum("ij,ij->i", centres, centres)
    # Each block makes about four temporaries of its size.
    step = chunk_rows(4 * len(centres))

    def search(start: int) -> tuple[np.ndarray, np.ndarray]:
        block = points[start : start + step]
        squared = (
            np.einsum("ij,ij->i", block, block)[:, None]
            + squared_centres[None, :]
            - 2.0 * (block @ centres.T)
        )
        distance = np.sqrt(np.maximum(squared, 0.0))
        home = partition.distances[start : start + step, None]
        # The slack covers float32 rounding of the distances above.
        reach = home + 2.0 * radius + 1e-3 * (home + radius) + 1e-6
        close = distance <= reach
        close[np.arange(len(block)), partition.labels[start : start + step]] = False
        rows, clusters = np.nonzero(close)
        return rows + start, clusters

    found = list(parallel_map(search, range(0, len(points), step)))
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def _pairs_within(
    points: np.ndarray,
    centre: np.ndarray,
    own: np.ndarray,
    candidates: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    # Centring on the cluster keeps the norms small, so the float32 products
    # lose little precision to cancellation.
    others = points[candidates] - centre
    norms = squared_norms(others)
    tile = np.empty((len(others), others.shape[1] + 1), dtype=np.float32)
    np.multiply(others, -2.0, out=tile[:, :-1])
    tile[:, -1] = norms
    limit = (1.01 * radius) ** 2 + 1e-6
    # Each block makes a float32 score array and a mask of its size, on each of
    # the threads at once, so blocks get half the working memory.
    step = chunk_rows(2 * len(candidates))
    firsts, seconds = [], []
    for start in range(0, len(own), step):
        rows = own[start : start + step]
        # ``own`` opens ``candidates``, so these rows are its first entries.
        scores = with_ones(others[start : start + len(rows)]) @ tile.T
        scores[np.arange(len(rows)), start + np.arange(len(rows))] = np.inf
        passing = scores < (limit - norms[start : start + len(rows)])[:, None]
        i, j = np.divmod(np.flatnonzero(passing), scores.shape[1])
        first, second = rows[i], candidates[j]
        exact = row_distances(points[first], points[second]) < radius
        firsts.append(first[exact])
        seconds.append(second[exact])
    if not firsts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


@dataclass(frozen=True)
class Cleaning:
    """The cleaned original: the kept rows and the original rows each represents."""

    rows: int
    invalid: dict[str, np.ndarray]
    # Positions in the original of the kept rows, in order.
    kept: np.ndarray
    # For every original row, the index into ``kept`` of its group; -1 if invalid.
    group: np.ndarray
    # For every original row, the index of its exact-duplicate group; -1 if invalid.
    exact_group: np.ndarray
    exact_duplicates: int
    near_duplicates: int
    near: NearPass
    ratio: float

    @property
    def weights(self) -> np.ndarray:
        """Number of original rows each kept row represents."""
        return np.bincount(self.group[self.group >= 0], minlength=len(self.kept))

    def report(self) -> dict[str, Any]:
        """Describe the cleaning for ``details["cleaning"]``; JSON-safe."""
        invalid_rows = self.rows - int((self.group >= 0).sum())
        redundant = self.exact_duplicates + self.near_duplicates
        return {
            "rows": self.rows,
            "invalid_rows": invalid_rows,
            "invalid": {
                name: {
                    "rows": len(rows),
                    "examples": [int(r) for r in rows[:MAX_EXAMPLES]],
                }
                for name, rows in self.invalid.items()
            },
            "exact_duplicate_rows": self.exact_duplicates,
            "near_duplicate_rows": self.near_duplicates,
            "redundancy_rate": redundant / self.rows,
            "cleaned_rows": len(self.kept),
            "near_duplicate_rule": (
                f"rows of the same scenario tuple closer than {self.ratio:g} x the "
                "median distance from a row to its nearest other row"
            ),
            "near_duplicate_threshold": finite_or_none(self.near.threshold),
            "median_spacing": finite_or_none(self.near.spacing),
            "spacing_rows": self.near.spacing_rows,
            "duplicate_groups": self._examples(),
        }

    def _examples(self) -> list[dict[str, Any]]:
        counts = np.bincount(self.group[self.group >= 0], minlength=len(self.kept))
        examples = []
        for index in np.flatnonzero(counts > 1)[:MAX_EXAMPLES]:
            kept = int(self.kept[index])
            members = np.flatnonzero(self.group == index)
            removed = members[members != kept]
            examples.append(
                {
                    "kept_row": kept,
                    "removed_rows": [
                        {"row": int(r), "kind": self._kind(int(r), kept)}
                        for r in removed[:MAX_REMOVED_LISTED]
                    ],
                    "removed_count": len(removed),
                }
            )
        return examples

    def _kind(self, row: int, kept: int) -> str:
        same = self.exact_group[row] == self.exact_group[kept]
        return "exact" if same else "near"


def combine(exact: ExactPass, near: NearPass, ratio: float) -> Cleaning:
    """Join the exact and near-duplicate passes into one grouping of the rows."""
    is_kept = near.representative == np.arange(len(exact.distinct))
    kept_index = np.cumsum(is_kept) - 1
    group = np.full(len(exact.group), -1, dtype=np.int64)
    valid = exact.group >= 0
    group[valid] = kept_index[near.representative[exact.group[valid]]]
    return Cleaning(
        rows=len(exact.group),
        invalid=exact.invalid,
        kept=exact.distinct[is_kept],
        group=group,
        exact_group=exact.group,
        exact_duplicates=int(valid.sum()) - len(exact.distinct),
        near_duplicates=len(exact.distinct) - int(is_kept.sum()),
        near=near,
        ratio=ratio,
    )
