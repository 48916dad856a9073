"""Edge cases: the most unusual rows of the cleaned original.

Two detectors score every row: an isolation forest and the local outlier factor
(20 neighbours). Each score becomes a rank within the fitted rows, scaled to
(0, 1], and a row's unusualness is the mean of its two ranks. The top 5% of the
fitted rows by unusualness form the edge set. Originals of more than 5,000
cleaned rows are fitted on a uniform sample of 5,000, and their edge counts are
estimates.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor

from app.evaluation.neighbours import block_rows, chunk_rows, parallel_map
from app.evaluation.progress import SILENT, Progress

EDGE_SHARE = 0.05
FIT_ROWS = 5_000
LOF_NEIGHBOURS = 20
# With fewer rows the top 5% contains no row at all.
MIN_ROWS = 20

First = TypeVar("First")
Second = TypeVar("Second")


@dataclass(frozen=True)
class EdgeModel:
    """Both detectors, fitted on ``fit_rows`` of the cleaned original."""

    forest: IsolationForest
    lof: LocalOutlierFactor
    fit_rows: np.ndarray
    forest_reference: np.ndarray
    lof_reference: np.ndarray
    fit_scores: np.ndarray
    threshold: float
    rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def sampled(self) -> bool:
        return len(self.fit_rows) < self.rows

    @property
    def fit_flags(self) -> np.ndarray:
        return np.asarray(self.fit_scores > self.threshold)


def fit_edges(
    points: np.ndarray, *, seed: int = 0, progress: Progress = SILENT
) -> EdgeModel | None:
    """Fit both detectors on the cleaned original; None with fewer than 20 rows."""
    rows = len(points)
    if rows < MIN_ROWS:
        return None
    fit_rows = np.arange(rows)
    if rows > FIT_ROWS:
        rng = np.random.default_rng(seed)
        fit_rows = np.sort(rng.choice(rows, FIT_ROWS, replace=False))
    sample = points[fit_rows]
    lof = LocalOutlierFactor(
        n_neighbors=min(LOF_NEIGHBOURS, len(sample) - 1), novelty=True
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forest, forest_unusual = _together(
            lambda: _fit_forest(sample, seed), lambda: lof.fit(sample)
        )[0]
    progress.update(0.7)
    lof_unusual = -lof.negative_outlier_factor_
    forest_reference = np.sort(forest_unusual)
    lof_reference = np.sort(lof_unusual)
    scores = _combined(forest_reference, lof_reference, forest_unusual, lof_unusual)
    return EdgeModel(
        forest=forest,
        lof=lof,
        fit_rows=fit_rows,
        forest_reference=forest_reference,
        lof_reference=lof_reference,
        fit_scores=scores,
        threshold=float(np.quantile(scores, 1.0 - EDGE_SHARE, method="lower")),
        rows=rows,
        notes=[str(w.message) for w in caught],
    )


def edge_flags(
    model: EdgeModel, points: np.ndarray, cleaned_rows: np.ndarray
) -> np.ndarray:
    """Flag which of ``points`` are edge cases.

    ``cleaned_rows[i]`` is the cleaned-original row that ``points[i]`` equals, or
    -1 for a row the original does not contain. A fitted row keeps the flag it
    got in the fit, and every other row is scored against the fitted rows.
    """
    fit_position = np.full(model.rows, -1, dtype=np.int64)
    fit_position[model.fit_rows] = np.arange(len(model.fit_rows))
    known = np.full(len(points), -1, dtype=np.int64)
    matched = cleaned_rows >= 0
    known[matched] = fit_position[cleaned_rows[matched]]
    flags = np.zeros(len(points), dtype=bool)
    flags[known >= 0] = model.fit_flags[known[known >= 0]]
    new = np.flatnonzero(known < 0)
    if len(new):
        flags[new] = _new_flags(model, points, new)
    return flags


def _new_flags(model: EdgeModel, points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Flag the rows ``rows`` of ``points``, which were not fitted.

    The forest scores every row. A row's outlier-factor rank is at most 1, so a
    row whose forest rank keeps its mean at or below the threshold even then
    cannot be an edge case. Only the other rows get the costly outlier factor,
    which needs their nearest fitted rows: on the wine bench table, 13% of
    them.
    """
    forest_unusual = -_forest_scores(model.forest, points, rows)
    highest = np.full(len(rows), np.inf)
    best_case = _combined(
        model.forest_reference, model.lof_reference, forest_unusual, highest
    )
    open_rows = np.flatnonzero(best_case > model.threshold)
    flags = np.zeros(len(rows), dtype=bool)
    # In blocks, so that the outlier factor's buffers stay within the working
    # memory.
    step = chunk_rows(points.shape[1])
    for start in range(0, len(open_rows), step):
        block = open_rows[start : start + step]
        lof_unusual = -model.lof.score_samples(points[rows[block]])
        combined = _combined(
            model.forest_reference,
            model.lof_reference,
            forest_unusual[block],
            lof_unusual,
        )
        flags[block] = combined > model.threshold
    return flags


def _fit_forest(sample: np.ndarray, seed: int) -> tuple[IsolationForest, np.ndarray]:
    """Fit the isolation forest and return it with the fitted rows' unusualness."""
    forest = IsolationForest(random_state=seed)
    # On one thread: each tree is small, and building them on threads spends
    # more time waiting for the interpreter lock than it saves.
    forest.fit(sample)
    return forest, -_forest_scores(forest, sample, np.arange(len(sample)))


def _together(
    first: Callable[[], First], second: Callable[[], Second]
) -> tuple[First, Second]:
    """Run both calls at once and return both results.

    The forest spends most of its time in Python and the local outlier factor
    in native code that releases the interpreter lock, so the two overlap.
    """
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(second)
        result = first()
        return result, pending.result()


def _forest_scores(
    forest: IsolationForest, points: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Score the rows ``rows`` of ``points`` with the forest, in blocks.

    Each block is scored over every tree on one thread, because scikit-learn's
    threaded scoring adds the trees up in the order the threads finish, which
    changes the last bit of a score from run to run. The trees release the
    interpreter lock, so the threads run in parallel. Blocks are as large as
    the working memory allows, up to 4,096 rows, because each call costs about
    10 ms whatever its size.
    """
    step = block_rows(len(rows), points.shape[1])

    def score(start: int) -> np.ndarray:
        return np.asarray(forest.score_samples(points[rows[start : start + step]]))

    return np.concatenate(list(parallel_map(score, range(0, len(rows), step))))


def _combined(
    forest_reference: np.ndarray,
    lof_reference: np.ndarray,
    forest_unusual: np.ndarray,
    lof_unusual: np.ndarray,
) -> np.ndarray:
    # A rank is the share of fitted rows at most as unusual, so ties share the
    # higher rank and a table of identical rows ranks every row 1.0.
    forest_rank = np.searchsorted(forest_reference, forest_unusual, side="right")
    lof_rank = np.searchsorted(lof_reference, lof_unusual, side="right")
    return np.asarray((forest_rank + lof_rank) / (2.0 * len(forest_reference)))
