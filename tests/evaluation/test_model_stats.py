"""Tests of intervals, McNemar's test and inconclusive verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from app.evaluation.metrics_gate import ModelMetrics, evaluate_metrics
from app.evaluation.model_stats import (
    accuracy_loss_estimate,
    error_increase_estimate,
    mcnemar_p_value,
    median_reduction_estimate,
    paired_loss_interval,
    ratio_interval,
    resampled_medians,
    round_counts,
    samples_needed,
    wilson_loss_interval,
)
from app.policy import Policy
from app.results import Check, Evaluation, compare_interval


def correctness(seed: int, rows: int, rate: float) -> np.ndarray:
    return np.random.default_rng(seed).random(rows) < rate


def test_accuracy_loss_estimate_is_deterministic() -> None:
    teacher, student = correctness(1, 500, 0.95), correctness(2, 500, 0.93)
    first = accuracy_loss_estimate(teacher, student, relative=False)
    second = accuracy_loss_estimate(teacher, student, relative=False)
    assert first == second
    assert first.value == pytest.approx(teacher.mean() - student.mean())
    assert first.low < first.value < first.high


def test_accuracy_loss_estimate_relative_scales() -> None:
    teacher, student = correctness(1, 500, 0.95), correctness(2, 500, 0.93)
    relative = accuracy_loss_estimate(teacher, student, relative=True)
    assert relative.value == pytest.approx(
        (teacher.mean() - student.mean()) / teacher.mean()
    )


def test_accuracy_loss_estimate_identical_models_not_zero_width() -> None:
    teacher = correctness(3, 200, 0.9)
    estimate = accuracy_loss_estimate(teacher, teacher.copy(), relative=False)
    assert estimate.value == 0.0
    assert estimate.low < -0.005
    assert estimate.high > 0.005


@pytest.mark.parametrize("rows", [1, 10])
def test_accuracy_loss_estimate_tiny_set_is_wide(rows: int) -> None:
    correct = np.ones(rows, dtype=bool)
    estimate = accuracy_loss_estimate(correct, correct.copy(), relative=False)
    # Equals the metrics gate's interval, because no row separates the models.
    assert estimate.interval == pytest.approx(wilson_loss_interval(1.0, 1.0, rows))
    assert estimate.high > 0.2
    needed = samples_needed(estimate, rows, 0.03)
    assert needed is not None
    assert needed > 10 * rows


def test_accuracy_loss_estimate_one_row_relative() -> None:
    correct = np.array([True])
    estimate = accuracy_loss_estimate(correct, correct.copy(), relative=True)
    assert estimate.high == pytest.approx(wilson_loss_interval(1.0, 1.0, 1)[1])


def test_paired_loss_interval_no_discordant_rows() -> None:
    rows = 1000
    low, high = paired_loss_interval(np.ones(rows, bool), np.ones(rows, bool))
    # The Wilson upper bound of 0 successes in n is z^2 / (n + z^2).
    z_squared = 1.959963984540054**2
    assert high == pytest.approx(z_squared / (rows + z_squared))
    assert low == pytest.approx(-high)


def test_paired_loss_interval_narrower_than_unpaired() -> None:
    teacher = correctness(4, 500, 0.9)
    student = teacher.copy()
    student[:10] = ~student[:10]
    low, high = paired_loss_interval(teacher, student)
    difference = teacher.mean() - student.mean()
    unpaired = wilson_loss_interval(teacher.mean(), student.mean(), 500)
    assert low < difference < high
    assert high - low < (unpaired[1] - unpaired[0]) / 2


def test_paired_loss_interval_covers_bootstrap_spread() -> None:
    teacher, student = correctness(1, 500, 0.95), correctness(2, 500, 0.93)
    low, high = paired_loss_interval(teacher, student)
    estimate = accuracy_loss_estimate(teacher, student, relative=False)
    # Independent models: the paired interval is close to the bootstrap one.
    assert low == pytest.approx(estimate.low, abs=0.01)
    assert high == pytest.approx(estimate.high, abs=0.01)


def test_ratio_interval_matches_delta_method() -> None:
    rng = np.random.default_rng(3)
    teacher = rng.exponential(1.0, 400)
    student = 1.2 * teacher + rng.normal(0.0, 0.1, 400)
    low, high = ratio_interval(teacher, student)
    ratio = student.mean() / teacher.mean()
    residual = student - ratio * teacher
    error = residual.std(ddof=1) / (np.sqrt(400) * teacher.mean())
    assert (low + high) / 2 == pytest.approx(ratio)
    assert (high - low) / 2 == pytest.approx(stats.t.ppf(0.975, 399) * error)
    assert ratio_interval(teacher[:1], student[:1]) is None


@pytest.mark.parametrize("squared", [False, True], ids=["mae", "rmse"])
def test_error_increase_estimate_few_rows_wide(squared: bool) -> None:
    teacher = np.array([1.0, 2.0, 1.5])
    student = np.array([1.0, 2.1, 1.5])
    few = error_increase_estimate(teacher, student, squared=squared)
    bootstrap_only = error_increase_estimate(
        np.tile(teacher, 200), np.tile(student, 200), squared=squared
    )
    assert few.low < few.value < few.high
    assert few.high - few.low > 5 * (bootstrap_only.high - bootstrap_only.low)


def test_median_reduction_estimate_pairs_rounds() -> None:
    rng = np.random.default_rng(0)
    drift = rng.uniform(1.0, 2.0, size=(40, 1))
    teacher = 1000.0 * drift * rng.uniform(0.95, 1.05, size=(40, 5))
    student = 200.0 * drift * rng.uniform(0.95, 1.05, size=(40, 5))
    estimate = median_reduction_estimate(teacher, student)
    assert estimate.value == pytest.approx(0.8, abs=0.02)
    assert estimate.low <= estimate.value <= estimate.high
    assert estimate == median_reduction_estimate(teacher, student)


@pytest.mark.parametrize(
    ("rounds", "runs", "ties"),
    [(1, 1, False), (3, 2, True), (7, 4, False), (40, 5, True), (300, 5, False)],
)
def test_resampled_medians_equal_numpy_median(
    rounds: int, runs: int, ties: bool
) -> None:
    rng = np.random.default_rng(rounds)
    if ties:
        values = rng.integers(0, 20, size=(rounds, runs)).astype(np.float64)
    else:
        values = rng.normal(1e6, 1e4, size=(rounds, runs))
    idx = rng.integers(0, rounds, size=(300, rounds))
    expected = np.median(values[idx], axis=(1, 2))
    np.testing.assert_array_equal(
        resampled_medians(values, round_counts(idx, rounds)), expected
    )


def test_round_counts_count_draws() -> None:
    idx = np.array([[0, 0, 2], [1, 2, 2]])
    np.testing.assert_array_equal(round_counts(idx, 3), [[2, 0, 1], [0, 1, 2]])


def test_median_reduction_estimate_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="one shape"):
        median_reduction_estimate(np.ones((3, 2)), np.ones((4, 2)))


def test_mcnemar_p_value_matches_binomtest() -> None:
    teacher = np.array([True] * 10 + [False] * 2 + [True] * 30)
    student = np.array([False] * 10 + [True] * 2 + [True] * 30)
    expected = stats.binomtest(10, 12, 0.5).pvalue
    assert mcnemar_p_value(teacher, student) == pytest.approx(expected)


def test_mcnemar_p_value_no_discordant_rows() -> None:
    same = np.array([True, False, True])
    assert mcnemar_p_value(same, same.copy()) == 1.0


def test_samples_needed_formula() -> None:
    teacher, student = correctness(1, 400, 0.95), correctness(2, 400, 0.94)
    estimate = accuracy_loss_estimate(teacher, student, relative=False)
    margin = abs(estimate.value - 0.03)
    expected = 400 * (1.959963984540054 * estimate.standard_error / margin) ** 2
    assert samples_needed(estimate, 400, 0.03) == int(np.ceil(expected))
    assert samples_needed(estimate, 400, estimate.value) is None


def test_wilson_loss_interval_contains_difference() -> None:
    low, high = wilson_loss_interval(0.98, 0.96, 450)
    assert low < 0.02 < high
    narrow = wilson_loss_interval(0.98, 0.96, 45_000)
    assert narrow[1] - narrow[0] < (high - low) / 5


# Checks and verdicts


def interval_check(value: float, interval: tuple[float, float]) -> Check:
    return compare_interval(
        "accuracy_loss", value, interval, 0.03, "<=",
        unit="fraction", describe=f"loss {value}", bound="0.03",
        shown_interval=f"[{interval[0]}, {interval[1]}]",
    )  # fmt: skip


def test_compare_interval_statuses() -> None:
    assert interval_check(0.01, (0.0, 0.02)).status == "passed"
    assert interval_check(0.04, (0.035, 0.05)).status == "failed"
    crossing = interval_check(0.02, (0.01, 0.04))
    assert crossing.status == "inconclusive"
    assert crossing.interval == [0.01, 0.04]
    assert crossing.message == (
        "loss 0.02 <= 0.03, 95% CI [0.01, 0.04] crosses 0.03: inconclusive"
    )


def test_evaluation_status_inconclusive() -> None:
    checks = [interval_check(0.01, (0.0, 0.02)), interval_check(0.02, (0.01, 0.04))]
    assert Evaluation(kind="model", checks=checks).status == "inconclusive"
    checks.append(interval_check(0.04, (0.035, 0.05)))
    assert Evaluation(kind="model", checks=checks).status == "failed"
    assert Evaluation(kind="model", checks=checks[:1]).status == "passed"


def test_check_interval_defaults_to_none() -> None:
    check = interval_check(0.01, (0.0, 0.02))
    assert check.to_dict()["interval"] == [0.0, 0.02]
    plain = Check("x", 1.0, 1.0, ">=", "fraction", "passed", False, "x")
    assert plain.interval is None


# Metrics-only gate with sample counts


def metrics(samples: int | None, student: float = 0.97) -> ModelMetrics:
    return ModelMetrics(
        kind="model",
        teacher={"accuracy": 0.98, "samples": samples},
        student={"accuracy": student, "samples": samples},
    )


def test_metrics_gate_samples_give_interval() -> None:
    result = evaluate_metrics(metrics(450), Policy())
    check = result.checks[0]
    assert check.interval == list(wilson_loss_interval(0.98, 0.97, 450))
    assert check.status == "inconclusive"
    assert result.status == "inconclusive"
    assert result.details["accuracy_loss"]["interval"] == check.interval


def test_metrics_gate_large_sample_passes() -> None:
    check = evaluate_metrics(metrics(50_000), Policy()).checks[0]
    assert check.status == "passed"
    assert check.message.startswith(
        "accuracy loss 1.0 pp (teacher 98.0% -> student 97.0%, 50000 rows) <= 3.0 pp"
    )


def test_metrics_gate_without_samples_has_no_interval() -> None:
    check = evaluate_metrics(metrics(None), Policy()).checks[0]
    assert check.interval is None
    assert check.status == "passed"


def test_metrics_gate_relative_mode() -> None:
    check = evaluate_metrics(
        metrics(None, 0.95), Policy(accuracy_loss_mode="relative")
    ).checks[0]
    assert check.value == pytest.approx(0.03 / 0.98)
    assert check.message == (
        "relative accuracy loss 3.1% (teacher 98.0% -> student 95.0%) > 3.0%"
    )
