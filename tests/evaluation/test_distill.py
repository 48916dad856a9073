"""Tests for distillation: the chosen subset passes the data gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.errors import InputError
from app.evaluation.distill import distill
from app.evaluation.required import rule_mask
from app.policy import Policy
from examples.artifacts import digits_test_cases

POLICY = Policy()


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return digits_test_cases()


def small_table(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["x", "y", "z"])
    table["kind"] = rng.choice(["a", "b", "c"], rows)
    table["size"] = rng.choice(["S", "M", "L"], rows)
    return table


def test_distill_digits_fifth_passes_gate(digits: pd.DataFrame) -> None:
    result = distill(
        digits,
        fraction=0.2,
        scenario_columns=["ink", "width"],
        label_column="label",
        policy=POLICY,
    )
    evaluation = result.evaluation
    statuses = {c.name: c.status for c in evaluation.checks}
    assert len(result.subset) == round(0.2 * len(digits))
    assert evaluation.status == "passed", [c.message for c in evaluation.checks]
    assert statuses["scenario_coverage"] == "passed"
    assert statuses["pairwise_coverage"] == "passed"
    assert statuses["feature_coverage"] == "passed"
    assert statuses["edge_case_share"] == "passed"
    assert np.all(np.diff(result.indices) > 0)
    assert result.subset.equals(digits.iloc[result.indices])
    margin = evaluation.metrics["feature_coverage_margin_over_random"]
    assert margin > 0.1


def test_distill_keeps_required_rows(digits: pd.DataFrame) -> None:
    rule = {"label": 8, "ink": "low"}
    available = int(rule_mask(digits, rule).sum())
    policy = Policy(required_scenarios=[rule], min_required_rows=5)
    result = distill(digits, size=60, policy=policy)
    kept = int(rule_mask(result.subset, rule).sum())
    assert available > 5
    assert kept >= 5
    required = next(
        c for c in result.evaluation.checks if c.name == "required_scenarios"
    )
    assert required.status == "passed"


def test_distill_budget_too_small_for_required_rows() -> None:
    policy = Policy(
        required_scenarios=[{"kind": "a"}, {"kind": "b"}], min_required_rows=3
    )
    with pytest.raises(InputError) as info:
        distill(small_table(), size=5, policy=policy)
    assert info.value.field == "size"
    assert info.value.message == (
        "size gives 5 rows, too few to keep the required scenarios (kind='a'; "
        "kind='b') with min_required_rows=3 rows each, or all the original has: "
        "they need at least 6 rows; ask for a size of at least 6 or lower "
        "min_required_rows"
    )


def test_distill_covers_scenarios_and_is_repeatable() -> None:
    table = small_table()
    first = distill(
        table, fraction=0.1, scenario_columns=["kind", "size"], policy=POLICY
    )
    second = distill(
        table, fraction=0.1, scenario_columns=["kind", "size"], policy=POLICY
    )
    scenario = next(c for c in first.evaluation.checks if c.name == "scenario_coverage")
    assert scenario.value == 1.0
    assert np.array_equal(first.indices, second.indices)
    assert len(first.indices) == 40


def test_distill_reports_progress() -> None:
    reports: list[tuple[str, float]] = []
    result = distill(
        small_table(),
        size=np.int64(40),  # type: ignore[arg-type]
        policy=POLICY,
        progress=lambda stage, fraction: reports.append((stage, fraction)),
    )
    stages = list(dict.fromkeys(stage for stage, _ in reports))
    assert len(result.indices) == 40
    assert stages[:4] == ["clean", "encode", "clusters", "near_duplicates"]
    assert "distill_coverage" in stages
    assert stages[-1] == "distributions"
    assert all(0.0 <= fraction <= 1.0 for _, fraction in reports)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (
            {},
            "size",
            "pass exactly one of size (a row count) and fraction (of the original's "
            "rows); got size=None and fraction=None",
        ),
        (
            {"size": 10, "fraction": 0.5},
            "size",
            "pass exactly one of size (a row count) and fraction (of the original's "
            "rows); got size=10 and fraction=0.5",
        ),
        (
            {"size": 0},
            "size",
            "size must be a whole number of rows from 1 to 400, the original's row "
            "count; got 0",
        ),
        (
            {"size": 2.5},
            "size",
            "size must be a whole number of rows from 1 to 400, the original's row "
            "count; got 2.5",
        ),
        (
            {"size": True},
            "size",
            "size must be a whole number of rows from 1 to 400, the original's row "
            "count; got True",
        ),
        (
            {"fraction": 1.5},
            "fraction",
            "fraction must be above 0 and at most 1, for example 0.2 for a fifth of "
            "the rows; got 1.5",
        ),
    ],
)
def test_distill_rejects_bad_budget(
    options: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(InputError) as info:
        distill(small_table(), policy=POLICY, **options)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.message == message


def test_distill_rejects_all_invalid_original() -> None:
    table = pd.DataFrame({"x": [np.nan, np.inf], "c": [None, "a"]})
    with pytest.raises(InputError) as info:
        distill(table, size=1, policy=POLICY)
    assert info.value.message == (
        "original has no valid row to choose from: every row is all missing or "
        "holds an infinite number; fix or drop those rows"
    )
