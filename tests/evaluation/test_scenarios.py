"""Tests for t-way coverage of the scenario columns."""

from __future__ import annotations

import pandas as pd

from app.evaluation.data_gate import evaluate_data
from app.evaluation.scenarios import combination_ids, t_way_coverage
from app.policy import Policy

# Every (a, b, c) of {0, 1}^3 with an even sum: 4 tuples, all 12 value pairs.
EVEN = pd.DataFrame(
    {"a": [0, 0, 1, 1], "b": [0, 1, 0, 1], "c": [0, 1, 1, 0], "x": [1.0, 2, 3, 4]}
)


def test_t_way_three_columns_by_hand() -> None:
    result = t_way_coverage(EVEN, EVEN.iloc[[0, 1]], ["a", "b", "c"], 3)
    assert (result.total, result.covered) == (4, 2)
    assert result.missing == [
        {"columns": ["a", "b", "c"], "values": [1, 0, 1], "original_rows": 1},
        {"columns": ["a", "b", "c"], "values": [1, 1, 0], "original_rows": 1},
    ]


def test_t_way_pairs_by_hand() -> None:
    result = t_way_coverage(EVEN, EVEN.iloc[[0, 3]], ["a", "b", "c"], 2)
    # Rows (0,0,0) and (1,1,0) cover 6 of the 12 value pairs.
    assert (result.total, result.covered) == (12, 6)


def test_combination_ids_are_distinct_per_column_set() -> None:
    arrays = combination_ids(EVEN, ["a", "b", "c"], 2)
    assert len(arrays) == 3
    assert [array.tolist() for array in arrays] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
    ]


def test_evaluate_data_adds_t_way_check() -> None:
    policy = Policy(t_way=3, min_coverage=0.0)
    evaluation = evaluate_data(
        EVEN, EVEN.iloc[[0, 1]], policy=policy, scenario_columns=["a", "b", "c"]
    )
    names = [c.name for c in evaluation.checks]
    assert names == [
        "scenario_coverage",
        "pairwise_coverage",
        "t_way_coverage",
        "feature_coverage",
        "required_scenarios",
        "edge_case_share",
    ]
    t_way = evaluation.checks[2]
    assert t_way.message == (
        "3-way coverage 50.0% (2 of 4 value combinations of 3 columns) >= 0.0%"
    )
    assert evaluation.metrics["t_way_missing"] == 2
    assert len(evaluation.details["missing_t_way"]) == 2


def test_evaluate_data_t_way_needs_enough_columns() -> None:
    evaluation = evaluate_data(
        EVEN, EVEN, policy=Policy(t_way=4), scenario_columns=["a", "b", "c"]
    )
    t_way = next(c for c in evaluation.checks if c.name == "t_way_coverage")
    assert t_way.status == "skipped"
    assert t_way.message == (
        "4-way coverage not measured: it needs at least 4 scenario columns (the "
        "label column counts as one), got 3"
    )
