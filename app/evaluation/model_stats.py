"""Confidence intervals and tests behind the model gate's verdicts.

Every interval here is a 95% percentile bootstrap interval with a fixed seed, so
the same inputs always give the same interval. Paired statistics resample the
same indices for teacher and student: rows of the evaluation set for accuracy,
timing rounds for latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
# Each chunk of resampled indices holds at most this many elements (32 MB of
# int64), so that large evaluation sets do not need a resamples x rows matrix.
_CHUNK_ELEMENTS = 4_000_000

Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval and standard error.

    ``standard_error`` is the standard deviation of the bootstrap distribution.
    ``low`` and ``high`` bound the 95% percentile interval.
    """

    value: float
    low: float
    high: float
    standard_error: float

    @property
    def interval(self) -> tuple[float, float]:
        return self.low, self.high


def bootstrap(
    statistic: Statistic,
    samples: int,
    *,
    value: float,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Estimate:
    """Bootstrap ``statistic`` over ``samples`` paired samples.

    ``statistic`` receives an int array of shape (k, samples) whose rows are
    resampled indices and returns the k statistics. ``value`` is the statistic
    on the original samples. Resamples whose statistic is NaN (undefined, for
    example a ratio over a zero) are left out of the interval.

    Raises:
        ValueError: ``samples`` is below 1 or every resample is undefined.
    """
    if samples < 1:
        raise ValueError(f"bootstrap needs at least one sample, got {samples}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // samples)
    parts = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        indices = rng.integers(0, samples, size=(count, samples))
        parts.append(np.asarray(statistic(indices), dtype=np.float64))
    draws = np.concatenate(parts)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        raise ValueError("every bootstrap resample gave an undefined statistic")
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), float(np.std(draws, ddof=1)))


def accuracy_loss_estimate(
    teacher_correct: np.ndarray, student_correct: np.ndarray, *, relative: bool
) -> Estimate:
    """Paired bootstrap of the accuracy loss over the evaluation rows.

    Both arrays are booleans, one per row: whether the model predicted that row
    correctly. The loss is ``teacher - student`` accuracy, divided by the
    teacher accuracy when ``relative``.

    Raises:
        ValueError: ``relative`` and the teacher accuracy is 0.
    """
    teacher = teacher_correct.astype(np.float64)
    student = student_correct.astype(np.float64)

    def loss(t: np.ndarray, s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            result: np.ndarray = (t - s) / t if relative else t - s
        return result

    value = float(loss(np.array(teacher.mean()), np.array(student.mean())))
    if not math.isfinite(value):
        raise ValueError("the relative accuracy loss is undefined at 0 accuracy")
    return bootstrap(
        lambda idx: loss(teacher[idx].mean(axis=1), student[idx].mean(axis=1)),
        len(teacher),
        value=value,
    )


def error_increase_estimate(
    teacher_errors: np.ndarray, student_errors: np.ndarray, *, squared: bool
) -> Estimate:
    """Paired bootstrap of the relative increase in MAE or RMSE.

    The arrays hold each row's absolute error. The increase is
    ``student / teacher - 1`` of the mean absolute error, or of the root mean
    squared error when ``squared``.

    Raises:
        ValueError: the teacher's error is 0, so the increase is undefined.
    """
    teacher = np.square(teacher_errors) if squared else teacher_errors
    student = np.square(student_errors) if squared else student_errors

    def increase(t: np.ndarray, s: np.ndarray) -> np.ndarray:
        if squared:
            t, s = np.sqrt(t), np.sqrt(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            result: np.ndarray = s / t - 1.0
        return result

    value = float(increase(np.array(teacher.mean()), np.array(student.mean())))
    if not math.isfinite(value):
        raise ValueError(
            "the teacher's error is 0, so its relative increase is undefined"
        )
    return bootstrap(
        lambda idx: increase(teacher[idx].mean(axis=1), student[idx].mean(axis=1)),
        len(teacher),
        value=value,
    )


def median_reduction_estimate(
    teacher_rounds: np.ndarray, student_rounds: np.ndarray
) -> Estimate:
    """Bootstrap ``1 - median(student) / median(teacher)`` over timing rounds.

    Both arrays have shape (rounds, runs per round), and row i of both was
    measured in the same round. A resample draws rounds with replacement, the
    same rounds for both models, and takes the median over all their runs, so
    drift that slows both models cancels out.

    Raises:
        ValueError: the arrays differ in shape, or the teacher's median is 0.
    """
    teacher = np.asarray(teacher_rounds, dtype=np.float64)
    student = np.asarray(student_rounds, dtype=np.float64)
    if teacher.shape != student.shape or teacher.ndim != 2:
        raise ValueError("teacher and student need (rounds, runs) arrays of one shape")
    teacher_median = float(np.median(teacher))
    if teacher_median <= 0:
        raise ValueError("the teacher's median is 0, so the reduction is undefined")
    value = 1.0 - float(np.median(student)) / teacher_median

    def reduction(idx: np.ndarray) -> np.ndarray:
        teacher_medians = np.median(teacher[idx], axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.median(student[idx], axis=(1, 2)) / teacher_medians
        result: np.ndarray = 1.0 - ratio
        return result

    return bootstrap(reduction, len(teacher), value=value)


def mcnemar_p_value(teacher_correct: np.ndarray, student_correct: np.ndarray) -> float:
    """Return McNemar's exact two-sided p-value for paired correctness.

    Only discordant rows count: rows the teacher got right and the student
    wrong, and the reverse. Under the hypothesis that both models are equally
    accurate, either kind is equally likely (binomial with p = 0.5). Without
    discordant rows the models cannot be told apart and the p-value is 1.
    """
    teacher_only = int(np.count_nonzero(teacher_correct & ~student_correct))
    student_only = int(np.count_nonzero(~teacher_correct & student_correct))
    discordant = teacher_only + student_only
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(teacher_only, discordant, 0.5).pvalue)


def samples_needed(estimate: Estimate, samples: int, threshold: float) -> int | None:
    """Estimate how many samples give an interval that stays on one side.

    The interval's half-width is about ``z * se`` and ``se`` shrinks with
    ``1 / sqrt(n)``. With ``n`` samples now, ``n_needed = n * (z * se /
    margin) ** 2`` makes the half-width equal the margin ``|value -
    threshold|``, where ``z`` is 1.96 for 95%. This is an estimate: it assumes
    the point estimate and the spread per sample stay as observed. Returns
    ``None`` when the value sits on the threshold, because then no sample size
    decides.
    """
    margin = abs(estimate.value - threshold)
    if margin <= 1e-12:
        return None
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    return max(1, math.ceil(samples * (z * estimate.standard_error / margin) ** 2))


def wilson_loss_interval(
    teacher: float, student: float, samples: int
) -> tuple[float, float]:
    """Return a 95% interval of ``teacher - student`` accuracy from accuracies only.

    Each accuracy gets a Wilson score interval over ``samples`` rows, and
    Newcombe's method (hybrid score interval for a difference of proportions)
    combines them. It treats the two accuracies as independent. On the same
    rows they are positively correlated, so the interval is conservative
    (wider than a paired one).
    """
    t_low, t_high = _wilson(teacher, samples)
    s_low, s_high = _wilson(student, samples)
    difference = teacher - student
    low = difference - math.hypot(teacher - t_low, s_high - student)
    high = difference + math.hypot(t_high - teacher, student - s_low)
    return low, high


def _wilson(accuracy: float, samples: int) -> tuple[float, float]:
    correct = round(accuracy * samples)
    interval = stats.binomtest(correct, samples).proportion_ci(
        confidence_level=CONFIDENCE, method="wilson"
    )
    return float(interval.low), float(interval.high)
