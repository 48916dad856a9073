"""Tests for the data gate on bundled scikit-learn datasets and hand-made tables."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, load_wine
from sklearn.model_selection import train_test_split

from app.errors import InputError
from app.evaluation.data_gate import evaluate_data
from app.policy import Policy
from app.results import Check, Evaluation

POLICY = Policy()


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    """Digits pixels with the class and an ink level derived from the pixel sum."""
    frame = load_digits(as_frame=True).frame
    ink = frame.drop(columns="target").sum(axis=1)
    levels = pd.qcut(ink, 3, labels=["light", "medium", "heavy"])
    frame["ink"] = levels.astype(str)
    return frame


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame


def central_rows(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """Return the rows nearest the column medians in standardised units."""
    features = frame.drop(columns="target")
    scaled = (features - features.median()) / features.std()
    distance = np.sqrt((scaled**2).sum(axis=1))
    return frame.loc[distance.nsmallest(count).index]


def check(evaluation: Evaluation, name: str) -> Check:
    return next(c for c in evaluation.checks if c.name == name)


def assert_json_safe(evaluation: Evaluation) -> None:
    json.dumps([c.to_dict() for c in evaluation.checks], allow_nan=False)
    json.dumps(evaluation.metrics, allow_nan=False)
    json.dumps(evaluation.details, allow_nan=False)


def test_evaluate_data_random_stratified_subset_fails_features(
    digits: pd.DataFrame,
) -> None:
    # A random subset keeps every scenario but covers the feature space only as
    # well as the random baseline, which k is chosen to keep below the bar.
    strata = digits["target"].astype(str) + "-" + digits["ink"]
    subset, _ = train_test_split(
        digits, train_size=0.4, stratify=strata, random_state=0
    )
    evaluation = evaluate_data(
        digits, subset, policy=POLICY, scenario_columns=["ink"], label_column="target"
    )
    feature = check(evaluation, "feature_coverage")
    assert evaluation.kind == "data"
    assert evaluation.status == "failed"
    assert check(evaluation, "scenario_coverage").status == "passed"
    assert check(evaluation, "pairwise_coverage").status == "passed"
    assert feature.status == "failed"
    assert check(evaluation, "scenario_coverage").message == (
        "scenario coverage 100.0% (30 of 30 tuples) >= 95.0%"
    )
    metrics = evaluation.metrics
    assert metrics["feature_coverage_k"] == 2
    assert metrics["feature_coverage_random"] == pytest.approx(1 - 0.6**3, abs=0.01)
    assert abs(metrics["feature_coverage_margin_over_random"]) < 0.05
    assert metrics["original_rows"] == 1797
    assert metrics["subset_rows"] == len(subset)
    assert metrics["clusters"] == 30
    assert_json_safe(evaluation)


def test_evaluate_data_dropped_classes_fail_scenarios(digits: pd.DataFrame) -> None:
    subset = digits[~digits["target"].isin([3, 7])]
    evaluation = evaluate_data(
        digits, subset, policy=POLICY, scenario_columns=["ink"], label_column="target"
    )
    scenario = check(evaluation, "scenario_coverage")
    assert evaluation.status == "failed"
    assert scenario.status == "failed"
    assert scenario.value == pytest.approx(24 / 30)
    assert scenario.message == "scenario coverage 80.0% (24 of 30 tuples) < 95.0%"
    missing = evaluation.details["missing_scenarios"]
    assert {entry["values"]["target"] for entry in missing} == {3, 7}
    assert len(missing) == 6
    assert evaluation.metrics["scenario_tuples_missing"] == 6


def test_evaluate_data_missing_scenarios_rarest_first(digits: pd.DataFrame) -> None:
    subset = digits[~digits["target"].isin([3, 7])]
    evaluation = evaluate_data(
        digits, subset, policy=POLICY, scenario_columns=["ink"], label_column="target"
    )
    counts = [e["original_rows"] for e in evaluation.details["missing_scenarios"]]
    assert counts == sorted(counts)
    dropped = digits[digits["target"].isin([3, 7])]
    assert sum(counts) == len(dropped)


HAND_MADE = pd.DataFrame(
    {
        "colour": ["red", "red", "blue", "blue", "green", "green"],
        "size": ["S", "L", "S", "L", "S", "S"],
        "label": [0, 1, 0, 1, 1, 1],
    }
)


def test_evaluate_data_pairwise_counts_by_hand() -> None:
    # Value pairs in the original: colour-size 5, colour-label 5, size-label 3.
    # Rows 0 and 3 keep (red, S, 0) and (blue, L, 1): 2 pairs of each kind.
    subset = HAND_MADE.iloc[[0, 3]]
    evaluation = evaluate_data(
        HAND_MADE,
        subset,
        policy=POLICY,
        scenario_columns=["colour", "size"],
        label_column="label",
    )
    pairwise = check(evaluation, "pairwise_coverage")
    assert pairwise.value == pytest.approx(6 / 13)
    assert pairwise.message == "pairwise coverage 46.2% (6 of 13 value pairs) < 95.0%"
    assert evaluation.metrics["pairs_original"] == 13
    assert evaluation.metrics["pairs_subset"] == 6
    assert evaluation.metrics["pairs_missing"] == 7
    assert check(evaluation, "scenario_coverage").message == (
        "scenario coverage 40.0% (2 of 5 tuples) < 95.0%"
    )


def test_evaluate_data_missing_pairs_rarest_first() -> None:
    subset = HAND_MADE.iloc[[0, 3]]
    evaluation = evaluate_data(
        HAND_MADE,
        subset,
        policy=POLICY,
        scenario_columns=["colour", "size"],
        label_column="label",
    )
    assert evaluation.details["missing_pairs"] == [
        {"columns": ["colour", "size"], "values": ["red", "L"], "original_rows": 1},
        {"columns": ["colour", "size"], "values": ["blue", "S"], "original_rows": 1},
        {"columns": ["colour", "label"], "values": ["red", 1], "original_rows": 1},
        {"columns": ["colour", "label"], "values": ["blue", 0], "original_rows": 1},
        {"columns": ["colour", "size"], "values": ["green", "S"], "original_rows": 2},
        {"columns": ["colour", "label"], "values": ["green", 1], "original_rows": 2},
        {"columns": ["size", "label"], "values": ["S", 1], "original_rows": 2},
    ]


def test_evaluate_data_missing_pairs_capped() -> None:
    original = pd.DataFrame({"a": np.arange(1500), "b": np.arange(1500) % 2})
    evaluation = evaluate_data(
        original, original.head(1), policy=POLICY, scenario_columns=["a", "b"]
    )
    assert len(evaluation.details["missing_pairs"]) == 1000
    assert evaluation.metrics["pairs_original"] == 1500
    assert evaluation.metrics["pairs_missing"] == 1499


def test_evaluate_data_identical_subset_full_coverage(digits: pd.DataFrame) -> None:
    evaluation = evaluate_data(
        digits,
        digits.copy(),
        policy=POLICY,
        scenario_columns=["ink"],
        label_column="target",
    )
    for name in ("scenario_coverage", "pairwise_coverage", "feature_coverage"):
        assert check(evaluation, name).value == 1.0
    assert evaluation.details["clusters"]["lost_clusters"] == []
    metrics = evaluation.metrics
    assert metrics["edge_rows_kept"] == metrics["edge_rows_original"]
    assert metrics["edge_case_share"] == metrics["edge_rows_original"] / 1797
    assert metrics["edge_retention"] == 1.0
    assert metrics["subset_rows_not_in_original"] == 0
    assert metrics["covering_radius_max"] == 0.0


def test_evaluate_data_one_class_fails_features(wine: pd.DataFrame) -> None:
    subset = wine[wine["target"] == 0]
    evaluation = evaluate_data(wine, subset, policy=POLICY)
    feature = check(evaluation, "feature_coverage")
    assert feature.status == "failed"
    assert feature.message == (
        "feature coverage 36.5% of cleaned original rows have a subset row no "
        "farther than their 3rd nearest neighbour (random subset of this size: "
        "80.0%, -43.5 pp over random) < 95.0%"
    )
    lost = evaluation.details["clusters"]["lost_clusters"]
    assert lost
    examples = [example for entry in lost for example in entry["examples"]]
    assert all(wine["target"].iat[example["row"]] != 0 for example in examples)
    metrics = evaluation.metrics
    uncovered = metrics["original_rows"] - metrics["original_rows_in_covered_clusters"]
    assert sum(entry["original_rows"] for entry in lost) == uncovered
    assert len(lost) == metrics["clusters"] - metrics["clusters_covered"]


def test_evaluate_data_edge_share_warns_without_unusual_rows(
    wine: pd.DataFrame,
) -> None:
    subset = central_rows(wine, 60)
    policy = Policy(min_coverage=0.0)
    evaluation = evaluate_data(wine, subset, policy=policy, label_column="target")
    edge = check(evaluation, "edge_case_share")
    assert edge.status == "warning"
    assert edge.advisory
    assert edge.value == 0.0
    assert edge.comparator == "within"
    assert edge.threshold == [0.05, 0.10]
    assert edge.message == (
        "edge-case share 0.0% of subset rows (0 of 60; subset keeps 0 of 9 edge "
        "rows of the cleaned original, 0.0%) outside 5.0%-10.0%"
    )
    assert evaluation.status == "passed"


def test_evaluate_data_new_row_scored_by_forest(wine: pd.DataFrame) -> None:
    outlier = wine.drop(columns="target").max() * 10
    extra = pd.DataFrame([{**outlier.to_dict(), "target": 0}])
    subset = pd.concat([central_rows(wine, 60), extra], ignore_index=True)
    evaluation = evaluate_data(wine, subset, policy=POLICY)
    assert evaluation.metrics["subset_rows_not_in_original"] == 1
    assert evaluation.metrics["edge_rows_subset"] == 1
    assert evaluation.metrics["edge_rows_kept"] == 0


def test_evaluate_data_values_near_float_limit() -> None:
    # Values of +-1e308 overflow a plain mean and standard deviation.
    rng = np.random.default_rng(4)
    original = pd.DataFrame(
        {
            "big": np.where(np.arange(400) % 2 == 0, 1e308, -1e308),
            "x": rng.normal(size=400),
        }
    )
    subset = original.iloc[::3].copy()
    subset.iloc[0, 1] = 1e300
    with np.errstate(all="raise"):
        evaluation = evaluate_data(original, subset, policy=Policy())
    coverage = check(evaluation, "feature_coverage")
    distributions = {
        c["column"]: c for c in evaluation.details["distributions"]["columns"]
    }
    assert coverage.status in {"passed", "failed"}
    assert 0.0 < evaluation.metrics["feature_coverage"] <= 1.0
    assert distributions["big"]["ks"] < 0.05
    assert distributions["big"]["wasserstein_over_std"] < 0.05


def test_evaluate_data_column_mismatch() -> None:
    subset = HAND_MADE.drop(columns=["size"]).assign(weight=1.0)
    with pytest.raises(InputError) as info:
        evaluate_data(HAND_MADE, subset, policy=POLICY)
    assert info.value.field == "subset"
    assert info.value.message == (
        "subset must have the same columns as original (missing from subset: "
        "['size']; not in original: ['weight']); select the subset's rows from the "
        "original without adding, dropping or renaming columns"
    )


def test_evaluate_data_unknown_scenario_column() -> None:
    with pytest.raises(InputError) as info:
        evaluate_data(HAND_MADE, HAND_MADE, policy=POLICY, scenario_columns=["color"])
    assert info.value.field == "scenario_columns"
    assert info.value.message == (
        "scenario_columns ['color'] not found in original; available columns: "
        "['colour', 'size', 'label']; did you mean 'colour'?"
    )


def test_evaluate_data_unknown_label_column() -> None:
    with pytest.raises(InputError) as info:
        evaluate_data(HAND_MADE, HAND_MADE, policy=POLICY, label_column="labels")
    assert info.value.field == "label_column"
    assert info.value.message == (
        "label_column 'labels' not found in original; available columns: "
        "['colour', 'size', 'label']; did you mean 'label'?"
    )


def test_evaluate_data_empty_subset() -> None:
    with pytest.raises(InputError, match="^subset has no rows; upload a table"):
        evaluate_data(HAND_MADE, HAND_MADE.iloc[:0], policy=POLICY)


def test_evaluate_data_empty_original() -> None:
    with pytest.raises(InputError, match="^original has no rows; upload a table"):
        evaluate_data(HAND_MADE.iloc[:0], HAND_MADE, policy=POLICY)


def test_evaluate_data_duplicate_columns() -> None:
    original = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(
        InputError, match=r"original has duplicate column names \['a'\]"
    ):
        evaluate_data(original, original, policy=POLICY)


def test_evaluate_data_nested_values() -> None:
    original = pd.DataFrame({"tags": [["a"], ["b", "c"]], "n": [1, 2]})
    with pytest.raises(InputError) as info:
        evaluate_data(original, original, policy=POLICY)
    assert info.value.message.startswith(
        "original column 'tags' contains nested values (lists, objects or arrays) in 2 "
        "rows, first at row 0; flatten them"
    )


def test_evaluate_data_column_type_mismatch() -> None:
    original = pd.DataFrame({"zip": ["02134", "A1"], "n": [1, 2]})
    subset = pd.DataFrame({"zip": [2134], "n": [1]})
    with pytest.raises(InputError) as info:
        evaluate_data(original, subset, policy=POLICY)
    assert info.value.field == "subset"
    assert "'zip' (str in original, int64 in subset)" in info.value.message


def test_evaluate_data_single_row_original() -> None:
    original = pd.DataFrame({"a": [1.0], "b": ["x"]})
    evaluation = evaluate_data(original, original, policy=POLICY, scenario_columns="b")
    assert evaluation.status == "passed"
    assert check(evaluation, "scenario_coverage").value == 1.0
    assert check(evaluation, "feature_coverage").value == 1.0
    assert check(evaluation, "feature_coverage").message == (
        "feature coverage: the nearest-neighbour test is not applicable because "
        "the cleaned original has 1 row, and 100.0% of cleaned original rows are "
        "in the subset >= 95.0%"
    )
    assert evaluation.details["clusters"]["n_clusters"] == 1
    assert check(evaluation, "edge_case_share").message == (
        "edge-case share not measured: the cleaned original has 1 row, fewer than "
        "the 20 needed for its top 5% to hold a row"
    )


def test_evaluate_data_constant_columns() -> None:
    # 40 equal rows clean down to one, which the subset keeps.
    original = pd.DataFrame({"a": [1.0] * 40, "b": ["x"] * 40})
    evaluation = evaluate_data(original, original.head(3), policy=POLICY)
    assert check(evaluation, "feature_coverage").value == 1.0
    assert evaluation.metrics["exact_duplicate_rows"] == 39
    assert evaluation.metrics["redundancy_rate"] == pytest.approx(39 / 40)
    assert check(evaluation, "edge_case_share").status == "skipped"
    assert evaluation.details["covering_radius"]["max_relative"] is None
    assert_json_safe(evaluation)


class ConstantFeaturiser:
    """A featuriser that gives every row the same two features."""

    width = 2

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        del frame, rows

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray:
        count = len(frame) if rows is None else len(rows)
        return np.zeros((count, self.width), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"constant": True}


def test_evaluate_data_identical_features_skip_edges() -> None:
    # Distinct rows with the same features: every detector score ties.
    original = pd.DataFrame({"id": np.arange(40)})
    evaluation = evaluate_data(
        original, original.head(3), policy=POLICY, featuriser=ConstantFeaturiser()
    )
    assert evaluation.details["feature_columns"] == {"constant": True}
    edge = check(evaluation, "edge_case_share")
    assert edge.status == "skipped"
    assert edge.message == (
        "edge-case share not measured: every row of the cleaned original scores as "
        "unusual as the rest, so no row stands out as an edge case"
    )


def test_evaluate_data_fewer_distinct_rows_than_k() -> None:
    # 300 rows clean down to 3; the subset keeps 2 of them, and the third has
    # the second as its nearest neighbour, so its k = 1 ball holds a subset row.
    original = pd.DataFrame({"a": [1, 2, 3] * 100, "b": list("xyz") * 100})
    evaluation = evaluate_data(original, original.head(2), policy=POLICY)
    clusters = evaluation.details["clusters"]
    assert evaluation.metrics["cleaned_rows"] == 3
    assert clusters["n_clusters"] == 2
    assert clusters["cluster_coverage"] == pytest.approx(200 / 300)
    assert clusters["lost_clusters"][0]["original_rows"] == 100
    assert check(evaluation, "feature_coverage").value == 1.0
    assert evaluation.metrics["feature_coverage_k"] == 1


def test_evaluate_data_all_missing_rows_skip_everything() -> None:
    original = pd.DataFrame({"a": [np.nan] * 5, "b": [None] * 5})
    evaluation = evaluate_data(
        original, original.head(2), policy=POLICY, scenario_columns=["b"]
    )
    assert evaluation.metrics["invalid_rows"] == 5
    assert evaluation.details["cleaning"]["invalid"]["all_missing"]["rows"] == 5
    assert check(evaluation, "scenario_coverage").message == (
        "scenario coverage not measured: every row of the original is invalid (see "
        "details.cleaning)"
    )
    assert check(evaluation, "feature_coverage").message == (
        "feature coverage not measured: every row of the original is invalid (see "
        "details.cleaning), so no row is left to compare"
    )
    assert evaluation.status == "inconclusive"
    assert_json_safe(evaluation)


def test_evaluate_data_all_missing_columns_skip_features() -> None:
    # Without row rules the all-missing rows stay, but no column yields a feature.
    original = pd.DataFrame({"a": [np.nan] * 5, "b": [None] * 5})
    evaluation = evaluate_data(original, original.head(2), policy=POLICY, row_rules=())
    statuses = {c.name: c.status for c in evaluation.checks}
    assert statuses == dict.fromkeys(
        [
            "scenario_coverage",
            "pairwise_coverage",
            "feature_coverage",
            "required_scenarios",
            "edge_case_share",
        ],
        "skipped",
    )
    assert check(evaluation, "feature_coverage").message == (
        "feature coverage not measured: every column of the original is all "
        "missing, so there is no feature to compare"
    )
    assert check(evaluation, "scenario_coverage").message.startswith(
        "scenario coverage not measured: no scenario columns"
    )
    assert evaluation.status == "inconclusive"


def test_evaluate_data_all_missing_column_excluded() -> None:
    original = pd.DataFrame({"a": np.arange(20.0), "empty": [np.nan] * 20})
    evaluation = evaluate_data(original, original, policy=POLICY)
    columns = evaluation.details["feature_columns"]
    assert columns["numeric"] == ["a"]
    assert columns["excluded_all_missing"] == ["empty"]


def test_evaluate_data_missing_values_in_scenarios() -> None:
    original = pd.DataFrame({"group": ["a", None, "b", np.nan], "x": [1.0, 2, 3, 4]})
    evaluation = evaluate_data(
        original, original.iloc[[0, 2]], policy=POLICY, scenario_columns=["group"]
    )
    assert evaluation.details["missing_scenarios"] == [
        {"values": {"group": None}, "original_rows": 2}
    ]
    assert_json_safe(evaluation)


def test_evaluate_data_aligns_integer_and_float_values() -> None:
    original = pd.DataFrame({"a": [1, 2, 3, 4], "c": ["x", "y", "x", "y"]})
    subset = pd.DataFrame({"c": ["x", "y"], "a": [1.0, np.nan]})
    evaluation = evaluate_data(original, subset, policy=POLICY, scenario_columns=["a"])
    missing = evaluation.details["missing_scenarios"]
    assert [entry["values"]["a"] for entry in missing] == [2, 3, 4]


def test_evaluate_data_time_and_bool_columns() -> None:
    rng = np.random.default_rng(0)
    original = pd.DataFrame(
        {
            "at": pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC"),
            "took": pd.to_timedelta(rng.integers(0, 100, 200), unit="s"),
            "flag": rng.choice([True, False], 200),
            "x": rng.normal(size=200),
        }
    )
    evaluation = evaluate_data(
        original,
        original.sample(80, random_state=0),
        policy=POLICY,
        scenario_columns=["flag"],
    )
    columns = evaluation.details["feature_columns"]
    assert columns["numeric"] == ["at", "took", "x"]
    assert columns["categorical"] == ["flag"]
    assert check(evaluation, "scenario_coverage").value == 1.0
    assert_json_safe(evaluation)


def test_evaluate_data_large_original_samples_rows() -> None:
    rng = np.random.default_rng(0)
    original = pd.DataFrame(rng.normal(size=(12_000, 4)), columns=list("abcd"))
    original["group"] = rng.choice(["p", "q", "r"], len(original))
    subset = original.sample(3_000, random_state=0)
    evaluation = evaluate_data(
        original, subset, policy=POLICY, scenario_columns=["group"]
    )
    feature = check(evaluation, "feature_coverage")
    assert evaluation.details["clusters"]["algorithm"] == "KMeans on 10,000 rows"
    assert evaluation.details["clusters"]["n_clusters"] == 77
    assert evaluation.details["feature_coverage"]["measured_rows"] == 5_000
    assert feature.interval is not None
    assert feature.interval[0] <= feature.value <= feature.interval[1]
    cleaned = evaluation.metrics["cleaned_rows"]
    assert f"estimated on 5,000 of {cleaned:,} rows" in feature.message
    assert ", 95% CI [" in feature.message
    assert evaluation.details["edge_cases"]["estimated"] is True
