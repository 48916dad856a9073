"""Clean and encode the original once, for the data gate and for distillation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from app.evaluation.cleaning import (
    DEFAULT_RULES,
    Cleaning,
    NearPass,
    RowRule,
    combine,
    exact_pass,
    near_pass,
)
from app.evaluation.clusters import Partition, partition
from app.evaluation.features import Featuriser, TableFeaturiser
from app.evaluation.neighbours import chunk_rows
from app.evaluation.progress import SILENT, Progress
from app.evaluation.scenarios import scenario_ids


class NearFinder(Protocol):
    """A grouping of near-duplicate rows by a measure other than feature distance.

    It is called with the positions in the original of the distinct valid rows
    and their scenario tuple numbers, and returns a ``NearPass`` like
    ``near_pass``. ``rule`` describes the measure for the result.
    """

    rule: str

    def __call__(self, rows: np.ndarray, tuples: np.ndarray) -> NearPass: ...


@dataclass(frozen=True)
class Prepared:
    """The cleaned original with its features.

    ``points`` holds the features of the kept rows, in the order of
    ``cleaning.kept``, and ``partition`` their clusters. Both are None when no
    column yields a feature or no row is valid.
    """

    cleaning: Cleaning
    featuriser: Featuriser
    points: np.ndarray | None
    partition: Partition | None
    # Scenario tuple number of every kept row.
    tuples: np.ndarray


def prepare(
    original: pd.DataFrame,
    hashes: np.ndarray,
    *,
    columns: Sequence[str],
    near_duplicate_ratio: float,
    featuriser: Featuriser | None = None,
    rules: Sequence[RowRule] = DEFAULT_RULES,
    near_finder: NearFinder | None = None,
    progress: Progress = SILENT,
) -> Prepared:
    """Drop invalid rows and duplicates from the original and encode the rest.

    ``hashes`` are the original's row hashes from ``row_hashes``. Near-duplicates
    are rows close in feature space unless ``near_finder`` groups them.
    """
    featuriser = featuriser if featuriser is not None else TableFeaturiser()
    progress.start("clean")
    exact = exact_pass(original, hashes, rules)
    tuples = scenario_ids(original, columns)
    no_links = NearPass(None, None, 0, np.arange(len(exact.distinct)))
    if len(exact.distinct) == 0:
        cleaning = combine(exact, no_links, near_duplicate_ratio)
        return Prepared(cleaning, featuriser, None, None, tuples[cleaning.kept])
    featuriser.fit(original, exact.distinct)
    if featuriser.width == 0:
        cleaning = combine(exact, no_links, near_duplicate_ratio)
        return Prepared(cleaning, featuriser, None, None, tuples[cleaning.kept])

    progress.start("encode")
    points = featuriser.transform(original, exact.distinct)
    progress.start("clusters")
    clusters = partition(points, progress=progress)
    progress.start("near_duplicates")
    if near_finder is not None and near_duplicate_ratio > 0.0:
        near = near_finder(exact.distinct, tuples[exact.distinct])
    else:
        near = near_pass(
            points,
            tuples[exact.distinct],
            near_duplicate_ratio,
            clusters,
            progress=progress,
        )
    cleaning = combine(exact, near, near_duplicate_ratio)
    is_kept = near.representative == np.arange(len(points))
    kept_clusters = replace(
        clusters,
        labels=clusters.labels[is_kept],
        distances=clusters.distances[is_kept],
    )
    points = _compact(points, is_kept)
    progress.done()
    return Prepared(cleaning, featuriser, points, kept_clusters, tuples[cleaning.kept])


def _compact(points: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Move the kept rows to the front in place and return a view of them."""
    rows = np.flatnonzero(keep)
    if len(rows) == len(points):
        return points
    # rows[i] >= i, so every block reads rows at or after the ones it writes and
    # never a row that an earlier block overwrote.
    step = chunk_rows(points.shape[1])
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        points[start : start + len(block)] = points[block]
    return points[: len(rows)]
