"""Tests for the greedy selection steps of distillation."""

from __future__ import annotations

import numpy as np

from app.evaluation.selection import Selection, cover_items, farthest_fill


def test_selection_gain_counts_uncovered_balls() -> None:
    # Row i's ball: i and its neighbour. Row 1 is in the balls of 0, 1 and 2.
    balls = np.array([[0, 1], [1, 0], [2, 1], [3, 2]])
    selection = Selection(4, balls, seed=0)
    assert selection.gain.tolist() == [2, 3, 2, 1]
    assert selection.best(np.ones(4, dtype=bool)) == 1
    selection.add(1)
    assert selection.covered.tolist() == [True, True, True, False]
    assert selection.gain.tolist() == [0, 0, 1, 1]


def test_selection_best_respects_allowed_rows() -> None:
    balls = np.array([[0, 1], [1, 0], [2, 1], [3, 2]])
    selection = Selection(4, balls, seed=0)
    allowed = np.array([True, False, False, True])
    assert selection.best(allowed) == 0
    selection.add(0)
    selection.add(3)
    assert selection.best(allowed) is None


def test_cover_items_uses_fewest_groups() -> None:
    # Items 0-5. Groups 0 and 2 together cover every item, so greedy set cover
    # skips group 1, whose items 3 and 4 group 2 also covers.
    items = np.array([[0, 1, 2], [0, 3, 4], [3, 4, 5], [3, 4, 5]])
    groups = np.array([0, 1, 2, 2])
    selection = Selection(4, None, seed=0)
    cover_items(selection, items, groups, 10)
    chosen_groups = [int(groups[row]) for row in selection.chosen]
    assert chosen_groups == [0, 2]


def test_cover_items_stops_at_budget() -> None:
    items = np.arange(6).reshape(6, 1)
    selection = Selection(6, None, seed=0)
    cover_items(selection, items, np.arange(6), 2)
    assert len(selection.chosen) == 2


def test_farthest_fill_takes_farthest_rows() -> None:
    points = np.array([[0.0], [1.0], [10.0], [4.0]], dtype=np.float32)
    selection = Selection(4, None, seed=0)
    selection.add(0)
    farthest_fill(selection, points, np.ones(4, dtype=bool), 3)
    assert selection.chosen == [0, 2, 3]
