"""Greedy row selection for distillation, over the rows of the cleaned original.

``Selection`` tracks the chosen rows and, for nearest-neighbour-ball coverage,
which rows are covered and how many uncovered rows each candidate would cover.
Coverage is submodular, so for a fixed number of rows greedily taking the
largest gain reaches at least 1 - 1/e of the best coverage possible. Rows that
earlier steps fixed fall outside that bound.
"""

from __future__ import annotations

import heapq

import numpy as np

from app.evaluation.neighbours import nearest, row_distances
from app.evaluation.progress import SILENT, Progress


class Selection:
    """Chosen rows, with the NN-ball coverage they give when balls are known.

    ``balls[i]`` lists the rows whose selection covers row i: i itself and its k
    nearest neighbours. Without balls every gain is 0. Ties between equal gains
    go to the earlier row of a seeded random order.
    """

    def __init__(self, rows: int, balls: np.ndarray | None, seed: int) -> None:
        self.rows = rows
        self.chosen: list[int] = []
        self.is_chosen = np.zeros(rows, dtype=bool)
        self.covered = np.zeros(rows, dtype=bool)
        self._order = np.random.default_rng(seed).permutation(rows)
        self._balls = balls
        self.gain = np.zeros(rows, dtype=np.int64)
        if balls is None:
            return
        flat = balls.ravel()
        owners = np.repeat(np.arange(rows), balls.shape[1])
        order = np.argsort(flat, kind="stable")
        self._covers = owners[order]
        self._starts = np.searchsorted(flat[order], np.arange(rows + 1))
        self.gain = np.bincount(flat, minlength=rows).astype(np.int64)

    def add(self, row: int) -> None:
        """Choose ``row`` and mark the rows whose ball contains it as covered."""
        self.chosen.append(row)
        self.is_chosen[row] = True
        if self._balls is None:
            return
        owners = self._covers[self._starts[row] : self._starts[row + 1]]
        new = owners[~self.covered[owners]]
        self.covered[new] = True
        np.subtract.at(self.gain, self._balls[new].ravel(), 1)

    def best(self, allowed: np.ndarray) -> int | None:
        """Return the allowed, unchosen row of largest gain; None if there is none."""
        candidates = allowed[self._order] & ~self.is_chosen[self._order]
        if not candidates.any():
            return None
        gains = np.where(candidates, self.gain[self._order], -1)
        return int(self._order[int(gains.argmax())])


def cover_items(
    selection: Selection,
    row_items: np.ndarray,
    group_of_row: np.ndarray,
    budget: int,
    progress: Progress = SILENT,
) -> None:
    """Choose rows until every item is covered or the budget is spent.

    ``row_items[i]`` lists the items row i covers, for example its scenario
    tuple and its value pairs; rows of one group (``group_of_row``) cover the
    same items. Greedy set cover takes the group with the most uncovered items
    and, inside it, the row of largest coverage gain.
    """
    covered = np.zeros(int(row_items.max()) + 1, dtype=bool)
    for row in selection.chosen:
        covered[row_items[row]] = True
    groups, first = np.unique(group_of_row, return_index=True)
    heap = [
        (-int((~covered[row_items[r]]).sum()), int(g))
        for g, r in zip(groups, first, strict=True)
    ]
    heapq.heapify(heap)
    first_row = dict(zip(groups.tolist(), first.tolist(), strict=True))
    total = len(heap)
    while heap and len(selection.chosen) < budget:
        stale, group = heapq.heappop(heap)
        gain = int((~covered[row_items[first_row[group]]]).sum())
        if gain == 0:
            continue
        if -stale != gain:
            heapq.heappush(heap, (-gain, group))
            continue
        best = selection.best(group_of_row == group)
        if best is None:
            continue
        selection.add(best)
        covered[row_items[best]] = True
        progress.part(total - len(heap), total)


def farthest_fill(
    selection: Selection,
    points: np.ndarray,
    allowed: np.ndarray,
    budget: int,
    progress: Progress = SILENT,
) -> None:
    """Fill the budget with the allowed row farthest from every chosen row.

    This is the greedy k-center rule. Started from one row, its covering radius
    is at most twice the smallest that any selection of the same size reaches.
    """
    free = allowed & ~selection.is_chosen
    wanted = min(budget - len(selection.chosen), int(free.sum()))
    if wanted <= 0:
        return
    if selection.chosen:
        gap, _ = nearest(points, points[np.array(selection.chosen)])
    else:
        gap = np.full(len(points), np.inf, dtype=np.float32)
    for step in range(wanted):
        masked = np.where(free, gap, -1.0)
        row = int(masked.argmax())
        selection.add(row)
        free[row] = False
        gap = np.minimum(gap, row_distances(points, points[row][None, :]))
        progress.part(step + 1, wanted)
