"""Tests for per-column distribution distances."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from app.evaluation.distributions import distribution_distances, ks_and_wasserstein


def by_column(details: dict[str, object]) -> dict[str, dict[str, object]]:
    entries = details["columns"]
    assert isinstance(entries, list)
    return {entry["column"]: entry for entry in entries}


def test_distributions_identical_tables_are_zero() -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "c": list("ab") * 50})
    result = by_column(distribution_distances(frame, frame, ["x", "c"]))
    assert result["x"]["ks"] == 0.0
    assert result["x"]["wasserstein_over_std"] == 0.0
    assert result["c"]["js_distance"] == 0.0


def test_distributions_shift_and_disjoint_categories() -> None:
    original = pd.DataFrame({"x": np.arange(100.0), "c": ["a"] * 100})
    subset = pd.DataFrame({"x": np.arange(100.0) + 1_000, "c": ["b"] * 100})
    details = distribution_distances(original, subset, ["x", "c"])
    result = by_column(details)
    assert result["x"]["ks"] == 1.0
    assert result["x"]["wasserstein_over_std"] == pytest.approx(
        1_000 / np.arange(100.0).std()
    )
    assert result["c"]["js_distance"] == pytest.approx(1.0)
    effects = [entry["effect"] for entry in details["columns"]]
    assert effects == sorted(effects, reverse=True)


def test_distributions_constant_column_has_no_ratio() -> None:
    original = pd.DataFrame({"x": [2.0] * 10})
    subset = pd.DataFrame({"x": [3.0] * 4})
    entry = by_column(distribution_distances(original, subset, ["x"]))["x"]
    assert entry["wasserstein_over_std"] is None
    assert entry["note"] == "constant in the original, so no spread to divide by"


def test_distributions_no_finite_values() -> None:
    original = pd.DataFrame({"x": [1.0, 2.0]})
    subset = pd.DataFrame({"x": [np.inf, np.nan]})
    entry = by_column(distribution_distances(original, subset, ["x"]))["x"]
    assert entry["ks"] is None
    assert entry["note"] == "no finite value in one of the tables"


@pytest.mark.parametrize(("first_size", "second_size"), [(1, 1), (50, 7), (3_000, 800)])
def test_ks_and_wasserstein_match_scipy(first_size: int, second_size: int) -> None:
    rng = np.random.default_rng(first_size)
    # Rounding makes ties within and across the samples.
    first = np.round(rng.normal(size=first_size), 1)
    second = np.round(rng.normal(0.3, 1.5, size=second_size), 1)
    ks, distance = ks_and_wasserstein(first, second)
    assert ks == pytest.approx(ks_2samp(first, second).statistic, abs=1e-12)
    assert distance == pytest.approx(wasserstein_distance(first, second), rel=1e-9)
