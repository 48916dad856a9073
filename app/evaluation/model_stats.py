"""Confidence intervals and tests behind the model gate's verdicts.

Every bootstrap interval here is a 95% percentile interval with a fixed seed,
so the same inputs always give the same interval. Paired statistics resample
the same indices for teacher and student: rows of the evaluation set for
accuracy, timing rounds for latency. The accuracy loss also gets a score
interval, because a bootstrap over rows on which both models agree has zero
width however few rows there are.
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
    """A point estimate with its 95% interval and standard error.

    ``low`` and ``high`` bound the 95% percentile bootstrap interval, widened
    by ``widened`` where an analytic interval is wider. ``standard_error`` is
    the standard deviation of the bootstrap distribution, or the widened
    interval's half-width divided by z when that is larger.
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
    """Estimate the accuracy loss with a paired interval over the evaluation rows.

    Both arrays are booleans, one per row: whether the model predicted that row
    correctly. The loss is ``teacher - student`` accuracy, divided by the
    teacher accuracy when ``relative``. The interval is the union of the
    paired bootstrap interval and ``paired_loss_interval``, so a few rows on
    which both models agree give a wide interval, not a zero-width one.

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
    estimate = bootstrap(
        lambda idx: loss(teacher[idx].mean(axis=1), student[idx].mean(axis=1)),
        len(teacher),
        value=value,
    )
    low, high = paired_loss_interval(teacher_correct, student_correct)
    if relative:
        # The teacher accuracy is treated as exact, as in the metrics gate.
        low, high = low / teacher.mean(), high / teacher.mean()
    return widened(estimate, low, high)


def widened(estimate: Estimate, low: float, high: float) -> Estimate:
    """Widen ``estimate`` to cover ``[low, high]`` and raise its standard error.

    The standard error becomes at least the half-width of the widened interval
    divided by z (1.96 for 95%), so ``samples_needed`` reads it consistently.
    """
    low, high = min(estimate.low, low), max(estimate.high, high)
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    error = max(estimate.standard_error, (high - low) / (2 * z))
    return Estimate(estimate.value, low, high, error)


def paired_loss_interval(
    teacher_correct: np.ndarray, student_correct: np.ndarray
) -> tuple[float, float]:
    """Return a 95% score interval of ``teacher - student`` accuracy on paired rows.

    This is Newcombe's method 10 for a difference of paired proportions
    (Statistics in Medicine 17:2635-2650, 1998): the Wilson intervals of both
    accuracies are combined with the correlation of the two models'
    correctness. Here the correlation gets a continuity correction of
    ``n / 2``, which widens the interval. It counts as 0 when either model is
    right on every row or on none, which gives the unpaired interval of
    ``wilson_loss_interval``. Unlike a bootstrap over the rows, the interval
    keeps a nonzero width without discordant rows: about ``±3.8 / n`` when
    both models are right on every row.
    """
    teacher = np.asarray(teacher_correct, dtype=bool)
    student = np.asarray(student_correct, dtype=bool)
    rows = len(teacher)
    both = int(np.count_nonzero(teacher & student))
    teacher_only = int(np.count_nonzero(teacher & ~student))
    student_only = int(np.count_nonzero(~teacher & student))
    neither = rows - both - teacher_only - student_only
    p_teacher = (both + teacher_only) / rows
    p_student = (both + student_only) / rows
    t_low, t_high = _wilson(p_teacher, rows)
    s_low, s_high = _wilson(p_student, rows)
    phi = _correlation(both, teacher_only, student_only, neither)
    below = _combined(p_teacher - t_low, s_high - p_student, phi)
    above = _combined(t_high - p_teacher, p_student - s_low, phi)
    difference = p_teacher - p_student
    return difference - below, difference + above


def _correlation(
    both: int, teacher_only: int, student_only: int, neither: int
) -> float:
    rows = both + teacher_only + student_only + neither
    spread = (
        (both + teacher_only)
        * (student_only + neither)
        * (both + student_only)
        * (teacher_only + neither)
    )
    if spread == 0:
        return 0.0
    cross = float(both * neither - teacher_only * student_only)
    if cross > 0:
        cross = max(cross - rows / 2, 0.0)
    return cross / math.sqrt(spread)


def _combined(first: float, second: float, phi: float) -> float:
    squared = first * first - 2 * phi * first * second + second * second
    return math.sqrt(max(squared, 0.0))


def error_increase_estimate(
    teacher_errors: np.ndarray, student_errors: np.ndarray, *, squared: bool
) -> Estimate:
    """Paired bootstrap of the relative increase in MAE or RMSE.

    The arrays hold each row's absolute error. The increase is
    ``student / teacher - 1`` of the mean absolute error, or of the root mean
    squared error when ``squared``. The interval is widened to cover
    ``ratio_interval``, so that a few rows do not give a narrow interval.

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
    estimate = bootstrap(
        lambda idx: increase(teacher[idx].mean(axis=1), student[idx].mean(axis=1)),
        len(teacher),
        value=value,
    )
    interval = ratio_interval(teacher, student)
    if interval is None:
        return estimate
    low, high = (max(bound, 0.0) for bound in interval)
    if squared:
        low, high = math.sqrt(low), math.sqrt(high)
    return widened(estimate, low - 1.0, high - 1.0)


def ratio_interval(
    teacher: np.ndarray, student: np.ndarray
) -> tuple[float, float] | None:
    """Return a 95% interval of ``mean(student) / mean(teacher)`` on paired rows.

    The delta method gives the ratio's standard error from the residuals
    ``student - ratio * teacher``, and Student's t with ``n - 1`` degrees of
    freedom the width. On a few rows the t quantile makes the interval wide
    (12.7 standard errors for 2 rows), where a bootstrap over so few rows is
    too narrow. Returns None for fewer than 2 rows.
    """
    rows = len(teacher)
    if rows < 2:
        return None
    teacher_mean = float(teacher.mean())
    ratio = float(student.mean()) / teacher_mean
    residual = student - ratio * teacher
    error = float(residual.std(ddof=1)) / (math.sqrt(rows) * teacher_mean)
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, rows - 1))
    return ratio - quantile * error, ratio + quantile * error


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
        counts = round_counts(idx, len(teacher))
        teacher_medians = resampled_medians(teacher, counts)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = resampled_medians(student, counts) / teacher_medians
        result: np.ndarray = 1.0 - ratio
        return result

    return bootstrap(reduction, len(teacher), value=value)


def round_counts(idx: np.ndarray, rounds: int) -> np.ndarray:
    """Count how often each round occurs in each resample.

    ``idx`` has shape (resamples, draws) and contains round numbers below
    ``rounds``. The result has shape (resamples, rounds).
    """
    offsets = np.arange(len(idx))[:, None] * rounds
    flat = np.bincount((idx + offsets).ravel(), minlength=len(idx) * rounds)
    counts: np.ndarray = flat.reshape(len(idx), rounds).astype(np.int32)
    return counts


def resampled_medians(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the median of every resample of the rounds of ``values``.

    ``values`` has shape (rounds, runs), and ``counts`` of shape (resamples,
    rounds) contains how often each round was drawn. The result equals
    ``np.median`` over the runs of the drawn rounds, the mean of the two
    middle runs when their number is even. The runs are sorted once, and each
    resample's median is read off cumulative counts, so no resample is copied
    or partitioned.
    """
    runs = values.shape[1]
    order = np.argsort(values, axis=None, kind="stable")
    ordered = values.reshape(-1)[order]
    rounds_of_sorted = order // runs
    total = int(counts[0].sum()) * runs
    block = max(1, _CHUNK_ELEMENTS // values.size)
    medians = np.empty(len(counts))
    for start in range(0, len(counts), block):
        # Element j of the sorted runs occurs as often as its round was
        # drawn, so the k-th smallest drawn run is the first j whose
        # cumulative count exceeds k.
        drawn = counts[start : start + block, rounds_of_sorted]
        cumulative = np.cumsum(drawn, axis=1, dtype=np.int32)
        lower = np.argmax(cumulative > (total - 1) // 2, axis=1)
        upper = np.argmax(cumulative > total // 2, axis=1)
        medians[start : start + block] = (ordered[lower] + ordered[upper]) / 2.0
    return medians


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
