"""Distillation: choose a subset of the original that passes the data gate.

Rows are chosen from the cleaned original, in this order, until the budget is
spent:

1. rows of every required scenario, ``min_required_rows`` each or all there are;
2. one row per scenario tuple and per observed t-way value combination, by
   greedy set cover;
3. edge cases, up to the middle of ``policy.edge_case_share``;
4. the rows of largest nearest-neighbour-ball coverage gain (greedy maximum
   coverage, the measure ``feature_coverage`` gates), leaving edge cases out;
5. once every row is covered, the row farthest from every chosen row (greedy
   k-center).

Inside steps 1 and 2 the row of largest coverage gain is taken. The subset is
then measured with ``evaluate_data``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.errors import InputError
from app.evaluation.cleaning import DEFAULT_RULES, RowRule, row_hashes
from app.evaluation.coverage import choose_k
from app.evaluation.data_gate import evaluate_data
from app.evaluation.edges import edge_flags, fit_edges
from app.evaluation.features import Featuriser
from app.evaluation.neighbours import neighbours
from app.evaluation.prepare import Prepared, prepare
from app.evaluation.progress import Progress, ProgressFn
from app.evaluation.required import describe_rule, rule_mask, validate_rules
from app.evaluation.scenarios import combination_ids
from app.evaluation.selection import Selection, cover_items, farthest_fill
from app.evaluation.validation import scenario_columns as listed_columns
from app.evaluation.validation import validate_tables
from app.policy import Policy
from app.results import Evaluation


@dataclass(frozen=True)
class DistillResult:
    """The chosen rows, their positions in the original and the gate's verdict."""

    subset: pd.DataFrame
    indices: np.ndarray
    evaluation: Evaluation
    # The rows the size or fraction requests, and the rows left after
    # cleaning, which bound the subset.
    requested_rows: int = 0
    cleaned_rows: int = 0


def distill(
    original: pd.DataFrame,
    *,
    size: int | None = None,
    fraction: float | None = None,
    scenario_columns: Sequence[str] = (),
    label_column: str | None = None,
    policy: Policy,
    seed: int = 0,
    featuriser: Featuriser | None = None,
    row_rules: Sequence[RowRule] = DEFAULT_RULES,
    progress: ProgressFn | None = None,
) -> DistillResult:
    """Choose ``size`` rows, or ``fraction`` of the rows, that cover the original.

    ``indices`` are the chosen rows' positions in ``original``, ascending, and
    ``subset`` is ``original.iloc[indices]`` with the original's index labels.
    The subset contains fewer rows than requested when the cleaned original is
    smaller. ``seed`` breaks ties between equally good rows.

    Raises:
        InputError: neither or both of size and fraction are given, either is out
            of range, the budget cannot hold every required row, or a table or
            column check of ``evaluate_data`` fails.
    """
    columns = listed_columns(scenario_columns, label_column)
    validate_tables(original, None, columns, label_column)
    validate_rules(policy.required_scenarios, list(original.columns))
    budget, field = row_budget(size, fraction, len(original))
    tracker = Progress(progress)
    hashes, _ = row_hashes(original)
    prepared = prepare(
        original,
        hashes,
        columns=columns,
        near_duplicate_ratio=policy.near_duplicate_ratio,
        featuriser=featuriser,
        rules=row_rules,
        progress=tracker,
    )
    if len(prepared.cleaning.kept) == 0:
        raise InputError(
            "original has no valid row to choose from: every row is all missing or "
            "holds an infinite number; fix or drop those rows",
            field="original",
            value=len(original),
        )
    chosen = _choose(original, prepared, columns, policy, budget, field, seed, tracker)
    indices = np.sort(prepared.cleaning.kept[chosen])
    subset = original.iloc[indices]
    evaluation = evaluate_data(
        original,
        subset,
        policy=policy,
        scenario_columns=columns,
        featuriser=featuriser,
        row_rules=row_rules,
        progress=progress,
    )
    return DistillResult(
        subset=subset,
        indices=indices,
        evaluation=evaluation,
        requested_rows=budget,
        cleaned_rows=len(prepared.cleaning.kept),
    )


def row_budget(size: int | None, fraction: float | None, rows: int) -> tuple[int, str]:
    """Return the rows to choose and the field that set them: size or fraction.

    Raises:
        InputError: neither or both are given, or the one given is out of range.
    """
    if (size is None) == (fraction is None):
        raise InputError(
            "pass exactly one of size (a row count) and fraction (of the original's "
            f"rows); got size={size!r} and fraction={fraction!r}",
            field="size",
            value=size,
        )
    if size is not None:
        whole = isinstance(size, int | np.integer) and not isinstance(size, bool)
        if not whole or not 1 <= size <= rows:
            raise InputError(
                f"size must be a whole number of rows from 1 to {rows}, the "
                f"original's row count; got {size!r}",
                field="size",
                value=size,
            )
        return int(size), "size"
    assert fraction is not None
    number = isinstance(fraction, int | float | np.floating)
    if not (number and not isinstance(fraction, bool) and 0.0 < fraction <= 1.0):
        raise InputError(
            f"fraction must be above 0 and at most 1, for example 0.2 for a fifth "
            f"of the rows; got {fraction!r}",
            field="fraction",
            value=fraction,
        )
    return max(1, round(fraction * rows)), "fraction"


def _choose(
    original: pd.DataFrame,
    prepared: Prepared,
    columns: list[str],
    policy: Policy,
    budget: int,
    field: str,
    seed: int,
    progress: Progress,
) -> np.ndarray:
    rows = len(prepared.cleaning.kept)
    budget = min(budget, rows)
    selection = Selection(rows, _balls(prepared, policy, budget, progress), seed)
    progress.start("distill_required")
    _add_required(original, prepared, policy, selection)
    if len(selection.chosen) > budget:
        raise _too_small(policy, budget, len(selection.chosen), field)
    progress.start("distill_scenarios")
    if columns:
        items, groups = _items(original, prepared, columns, policy.t_way)
        cover_items(selection, items, groups, budget, progress)
    allowed = np.ones(rows, dtype=bool)
    if prepared.points is not None:
        progress.start("distill_edges")
        allowed = ~_add_edges(prepared, policy, selection, budget)
    progress.start("distill_coverage")
    while len(selection.chosen) < budget:
        row = selection.best(allowed)
        if row is None or selection.gain[row] == 0:
            break
        selection.add(row)
        progress.part(len(selection.chosen), budget)
    progress.start("distill_fill")
    _fill(prepared, selection, allowed, budget, seed, progress)
    return np.array(selection.chosen, dtype=np.int64)


def _balls(
    prepared: Prepared, policy: Policy, budget: int, progress: Progress
) -> np.ndarray | None:
    """List each cleaned row with its k nearest neighbours; None without features."""
    points = prepared.points
    if points is None or len(points) < 2:
        return None
    k = policy.coverage_neighbours or choose_k(
        budget / len(points), policy.min_coverage, policy.coverage_margin
    )
    k = min(k, len(points) - 1)
    progress.start("distill_neighbours")
    _, found = neighbours(points, np.arange(len(points)), k, progress=progress)
    return np.hstack([np.arange(len(points))[:, None], found])


def _add_required(
    original: pd.DataFrame, prepared: Prepared, policy: Policy, selection: Selection
) -> None:
    kept = original.iloc[prepared.cleaning.kept]
    for rule in policy.required_scenarios:
        matching = rule_mask(kept, rule)
        wanted = min(policy.min_required_rows, int(matching.sum()))
        while int((matching & selection.is_chosen).sum()) < wanted:
            row = selection.best(matching)
            assert row is not None
            selection.add(row)


def _too_small(policy: Policy, budget: int, needed: int, field: str) -> InputError:
    rules = "; ".join(describe_rule(rule) for rule in policy.required_scenarios[:5])
    return InputError(
        f"{field} gives {budget} rows, too few to keep the required scenarios "
        f"({rules}) with min_required_rows={policy.min_required_rows} rows each, "
        f"or all the original has: they need at least {needed} rows; ask for a "
        f"size of at least {needed} or lower min_required_rows",
        field=field,
        value=budget,
    )


def _items(
    original: pd.DataFrame, prepared: Prepared, columns: list[str], t_way: int
) -> tuple[np.ndarray, np.ndarray]:
    """Number each kept row's scenario tuple and t-way combinations as items."""
    kept = original.iloc[prepared.cleaning.kept]
    tuples = np.unique(prepared.tuples, return_inverse=True)[1]
    t = min(t_way, len(columns))
    arrays = [tuples]
    if t >= 2:
        offset = int(tuples.max()) + 1
        arrays += [ids + offset for ids in combination_ids(kept, columns, t)]
    return np.column_stack(arrays), tuples


def _add_edges(
    prepared: Prepared, policy: Policy, selection: Selection, budget: int
) -> np.ndarray:
    """Add edge cases up to the middle of the share range; return the edge mask."""
    assert prepared.points is not None
    model = fit_edges(prepared.points)
    rows = len(prepared.points)
    if model is None:
        return np.zeros(rows, dtype=bool)
    flags = edge_flags(model, prepared.points, np.arange(rows))
    low, high = policy.edge_case_share
    target = round((low + high) / 2 * budget)
    if math.ceil(low * budget) <= math.floor(high * budget):
        target = min(max(target, math.ceil(low * budget)), math.floor(high * budget))
    while (
        int((flags & selection.is_chosen).sum()) < target
        and len(selection.chosen) < budget
    ):
        row = selection.best(flags)
        if row is None:
            break
        selection.add(row)
    return flags


def _fill(
    prepared: Prepared,
    selection: Selection,
    allowed: np.ndarray,
    budget: int,
    seed: int,
    progress: Progress,
) -> None:
    if prepared.points is not None:
        farthest_fill(selection, prepared.points, allowed, budget, progress)
        farthest_fill(selection, prepared.points, ~allowed, budget, progress)
        return
    free = np.flatnonzero(~selection.is_chosen)
    wanted = min(budget - len(selection.chosen), len(free))
    rng = np.random.default_rng(seed)
    for row in rng.choice(free, wanted, replace=False):
        selection.add(int(row))
