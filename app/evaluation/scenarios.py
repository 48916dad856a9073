"""Scenario and t-way coverage: the value combinations a subset keeps.

A scenario is one distinct tuple of values of the scenario columns. Values compare
by equality after pandas aligns the column types of both tables, so ``1`` in an
integer column matches ``1.0`` in a float column, and missing values (None, NaN,
NaT) form one value of their own.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_MISSING_PAIRS = 1000


@dataclass(frozen=True)
class TupleCoverage:
    """Distinct value tuples of the original and how many of them the subset has.

    ``missing`` lists the uncovered tuples rarest first, possibly capped, while
    ``total - covered`` is always the full count.
    """

    total: int
    covered: int
    missing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Covered share of the tuples; 1.0 when the original has none."""
        return self.covered / self.total if self.total else 1.0


@dataclass(frozen=True)
class _Groups:
    """Distinct tuples of the original in order of first appearance."""

    first_rows: np.ndarray
    counts: np.ndarray
    covered: np.ndarray


def scenario_coverage(
    original: pd.DataFrame, subset: pd.DataFrame, columns: Sequence[str]
) -> TupleCoverage:
    """Measure which distinct tuples of ``columns`` in the original the subset has.

    Every missing tuple is listed as ``{"values": {column: value},
    "original_rows": n}``, rarest first and then in order of first appearance.
    """
    groups = _groups(original, subset, list(columns))
    missing = []
    for index in _rarest_uncovered(groups):
        row = int(groups.first_rows[index])
        missing.append(
            {
                "values": {column: _cell(original, row, column) for column in columns},
                "original_rows": int(groups.counts[index]),
            }
        )
    return TupleCoverage(
        total=len(groups.counts), covered=int(groups.covered.sum()), missing=missing
    )


def pairwise_coverage(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    columns: Sequence[str],
    *,
    limit: int = MAX_MISSING_PAIRS,
) -> TupleCoverage:
    """Measure which value pairs of two ``columns`` in the original the subset has.

    A value pair is (column a, value, column b, value) for one row of the original.
    At most ``limit`` missing pairs are listed, as ``{"columns": [a, b], "values":
    [value_a, value_b], "original_rows": n}``, rarest first, then by column pair
    and first appearance.
    """
    return t_way_coverage(original, subset, columns, 2, limit=limit)


def t_way_coverage(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    columns: Sequence[str],
    t: int,
    *,
    limit: int = MAX_MISSING_PAIRS,
) -> TupleCoverage:
    """Measure which value combinations of every ``t`` of ``columns`` the subset has.

    A combination is t columns with one value each, as they occur together in one
    row of the original. Missing combinations are listed as for pairwise coverage,
    with t columns and t values each.
    """
    combos = list(itertools.combinations(columns, t))
    per_combo = [_groups(original, subset, list(combo)) for combo in combos]
    total = sum(len(groups.counts) for groups in per_combo)
    covered = sum(int(groups.covered.sum()) for groups in per_combo)

    combo_index, group_index = _concat_uncovered(per_combo)
    counts = np.array(
        [per_combo[p].counts[g] for p, g in zip(combo_index, group_index, strict=True)],
        dtype=np.int64,
    )
    # np.lexsort sorts by the last key first: count, then columns, then group.
    order = np.lexsort((group_index, combo_index, counts))[:limit]
    missing = [
        _combo_entry(
            original,
            combos[combo_index[i]],
            per_combo[combo_index[i]],
            int(group_index[i]),
        )
        for i in order
    ]
    return TupleCoverage(total=total, covered=covered, missing=missing)


def scenario_ids(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Number the distinct tuples of ``columns`` in order of first appearance.

    Without columns every row gets 0.
    """
    if not columns:
        return np.zeros(len(frame), dtype=np.int64)
    ids = frame.groupby(list(columns), dropna=False, sort=False).ngroup()
    return np.asarray(ids.to_numpy(), dtype=np.int64)


def combination_ids(
    frame: pd.DataFrame, columns: Sequence[str], t: int
) -> list[np.ndarray]:
    """Number the value combinations of every ``t`` of ``columns``, one array each.

    The numbers of the second array start after the last of the first, and so on,
    so that every combination of every column set has its own number.
    """
    arrays, offset = [], 0
    for combo in itertools.combinations(columns, t):
        ids = scenario_ids(frame, combo)
        arrays.append(ids + offset)
        offset += int(ids.max()) + 1 if len(ids) else 0
    return arrays


def row_example(
    frame: pd.DataFrame, row: int, columns: Sequence[str], *, limit: int = 8
) -> dict[str, Any]:
    """Describe one row by position: ``columns`` first, then others up to ``limit``."""
    shown = list(dict.fromkeys([*columns, *frame.columns]))[: max(limit, len(columns))]
    return {"row": row, "values": {str(c): _cell(frame, row, c) for c in shown}}


def json_value(value: Any) -> Any:
    """Convert one table cell to a JSON value: missing and non-finite become None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _groups(
    original: pd.DataFrame, subset: pd.DataFrame, columns: list[str]
) -> _Groups:
    """Number the distinct tuples of ``columns`` and mark those the subset has."""
    # Concatenating first gives each column one dtype for both tables, so equal
    # values get equal group numbers. Original rows come first, so with sort=False
    # the original's tuples are numbered 0..n-1 in order of first appearance.
    combined = pd.concat([original[columns], subset[columns]], ignore_index=True)
    ids = combined.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
    original_ids, subset_ids = ids[: len(original)], ids[len(original) :]
    _, first_rows, counts = np.unique(
        original_ids, return_index=True, return_counts=True
    )
    covered = np.zeros(len(counts), dtype=bool)
    covered[subset_ids[subset_ids < len(counts)]] = True
    return _Groups(first_rows=first_rows, counts=counts, covered=covered)


def _rarest_uncovered(groups: _Groups) -> np.ndarray:
    uncovered = np.flatnonzero(~groups.covered)
    order = np.argsort(groups.counts[uncovered], kind="stable")
    return uncovered[order]


def _concat_uncovered(per_combo: list[_Groups]) -> tuple[np.ndarray, np.ndarray]:
    """Return the column-set index and group index of every uncovered combination."""
    uncovered = [np.flatnonzero(~groups.covered) for groups in per_combo]
    combo_index = np.concatenate(
        [np.full(len(ids), p, dtype=np.int64) for p, ids in enumerate(uncovered)]
        or [np.empty(0, dtype=np.int64)]
    )
    group_index = np.concatenate(uncovered or [np.empty(0, dtype=np.int64)])
    return combo_index, group_index


def _combo_entry(
    original: pd.DataFrame, combo: tuple[str, ...], groups: _Groups, group: int
) -> dict[str, Any]:
    row = int(groups.first_rows[group])
    return {
        "columns": list(combo),
        "values": [_cell(original, row, column) for column in combo],
        "original_rows": int(groups.counts[group]),
    }


def _cell(frame: pd.DataFrame, row: int, column: str) -> Any:
    # Reading by column keeps the column's own type: a row Series of mixed
    # integer and float columns would turn 3 into 3.0.
    return json_value(frame[column].iat[row])
