"""Tests for cleaning the original: invalid rows, exact and near duplicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import load_wine

from app.evaluation.cleaning import near_pass, row_hashes
from app.evaluation.clusters import partition
from app.evaluation.data_gate import evaluate_data
from app.policy import Policy

POLICY = Policy()


def test_row_hashes_align_integers_and_floats() -> None:
    original = pd.DataFrame({"n": [1, 2, 3], "s": ["a", None, "c"]})
    subset = pd.DataFrame({"n": [1.0, 2.0, np.nan], "s": ["a", np.nan, "c"]})
    first, second = row_hashes(original, subset)
    assert second[0] == first[0]
    assert second[1] == first[1]
    assert second[2] not in set(first.tolist())


def test_row_hashes_differ_per_column_order_of_values() -> None:
    original = pd.DataFrame({"a": [1, 2], "b": [2, 1]})
    hashes, subset_hashes = row_hashes(original)
    assert hashes[0] != hashes[1]
    assert len(subset_hashes) == 0


def test_clean_reports_invalid_rows() -> None:
    original = pd.DataFrame(
        {
            "x": [1.0, np.nan, np.inf, 4.0, 5.0],
            "c": ["a", None, "b", "c", "d"],
        }
    )
    evaluation = evaluate_data(original, original.iloc[[0, 3]], policy=POLICY)
    cleaning = evaluation.details["cleaning"]
    assert cleaning["invalid_rows"] == 2
    assert cleaning["invalid"] == {
        "all_missing": {"rows": 1, "examples": [1]},
        "non_finite": {"rows": 1, "examples": [2]},
    }
    assert cleaning["cleaned_rows"] == 3
    assert evaluation.metrics["invalid_rows"] == 2


def test_clean_exact_duplicate_kept_through_copy() -> None:
    # Rows 0 and 1 are equal. The subset contains row 1, the copy that cleaning
    # removes, and that still covers the group.
    original = pd.DataFrame({"x": [0.0, 0.0, 5.0], "c": ["a", "a", "b"]})
    evaluation = evaluate_data(original, original.iloc[[1]], policy=POLICY)
    cleaning = evaluation.details["cleaning"]
    assert cleaning["exact_duplicate_rows"] == 1
    assert cleaning["redundancy_rate"] == pytest.approx(1 / 3)
    assert cleaning["duplicate_groups"] == [
        {
            "kept_row": 0,
            "removed_rows": [{"row": 1, "kind": "exact"}],
            "removed_count": 1,
        }
    ]
    assert evaluation.metrics["feature_coverage"] == 1.0
    assert evaluation.details["representation"]["counts"] == [3]


def wine_with_near_copies(noise: float) -> tuple[pd.DataFrame, list[int]]:
    """Wine plus noisy copies of its first 10 rows; return the copies' rows."""
    wine = load_wine(as_frame=True).frame
    rng = np.random.default_rng(0)
    copies = wine.head(10).copy()
    numeric = copies.columns.drop("target")
    copies[numeric] += (
        rng.normal(size=(10, len(numeric))) * noise * wine[numeric].std().to_numpy()
    )
    table = pd.concat([wine, copies], ignore_index=True)
    return table, list(range(len(wine), len(table)))


def test_clean_finds_near_duplicates() -> None:
    table, copies = wine_with_near_copies(0.001)
    evaluation = evaluate_data(
        table, table.sample(60, random_state=0), policy=POLICY, label_column="target"
    )
    cleaning = evaluation.details["cleaning"]
    assert cleaning["near_duplicate_rows"] == 10
    assert cleaning["exact_duplicate_rows"] == 0
    assert cleaning["cleaned_rows"] == len(table) - 10
    assert cleaning["near_duplicate_threshold"] == pytest.approx(
        0.1 * cleaning["median_spacing"]
    )
    groups = cleaning["duplicate_groups"]
    assert [group["kept_row"] for group in groups] == list(range(10))
    removed = [group["removed_rows"] for group in groups]
    assert removed == [[{"row": row, "kind": "near"}] for row in copies]


def test_clean_near_duplicates_need_same_scenario() -> None:
    table, _ = wine_with_near_copies(0.001)
    table.loc[len(table) - 10 :, "target"] = (table["target"].iloc[:10] + 1) % 3
    evaluation = evaluate_data(
        table, table.head(60), policy=POLICY, label_column="target"
    )
    assert evaluation.details["cleaning"]["near_duplicate_rows"] == 0


def test_clean_near_duplicates_off_with_zero_ratio() -> None:
    table, _ = wine_with_near_copies(0.001)
    policy = Policy(near_duplicate_ratio=0.0)
    evaluation = evaluate_data(table, table.head(60), policy=policy)
    cleaning = evaluation.details["cleaning"]
    assert cleaning["near_duplicate_rows"] == 0
    assert cleaning["near_duplicate_threshold"] is None


def test_near_pass_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(3_000, 10)).astype(np.float32)
    points[1_000:1_100] = points[:100] + rng.normal(size=(100, 10)) * 0.02
    tuples = np.zeros(len(points), dtype=np.int64)
    result = near_pass(points, tuples, 0.1, partition(points))
    assert result.threshold is not None
    distance = cdist(points.astype(np.float64), points.astype(np.float64))
    close = distance < result.threshold
    np.fill_diagonal(close, False)
    first_close = np.where(close.any(axis=1), close.argmax(axis=1), np.arange(3_000))
    expected = np.minimum(np.arange(3_000), first_close)
    assert np.array_equal(result.representative, expected)
    assert (result.representative != np.arange(3_000)).sum() == 100
