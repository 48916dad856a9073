"""Validation of the tables and column names a data gate or distillation receives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.errors import InputError
from app.evaluation.features import column_kind
from app.evaluation.readers import suggest

_LISTED_COLUMNS = 50


def scenario_columns(names: Sequence[str], label_column: str | None) -> list[str]:
    """Return the scenario columns with the label column last, each once."""
    # A bare string is one column name, not a sequence of one-letter names.
    listed = [names] if isinstance(names, str) else list(names)
    if label_column is not None:
        listed.append(label_column)
    return list(dict.fromkeys(listed))


def validate_tables(
    original: pd.DataFrame,
    subset: pd.DataFrame | None,
    columns: list[str],
    label_column: str | None,
) -> None:
    """Reject tables that cannot be compared; ``subset`` is None when distilling.

    Raises:
        InputError: a table has no rows, the column sets differ, a named column
            does not exist, a cell contains a nested value, or a column is numeric in
            one table and not in the other.
    """
    tables = [(original, "original")]
    if subset is not None:
        tables.append((subset, "subset"))
    for frame, field in tables:
        if len(frame) == 0:
            raise InputError(
                f"{field} has no rows; upload a table with at least one row",
                field=field,
                value=0,
            )
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        if duplicated:
            raise InputError(
                f"{field} has duplicate column names {duplicated}; give every "
                "column a unique name",
                field=field,
                value=duplicated,
            )
    if subset is not None:
        _require_same_columns(original, subset)
    scenario_names = [c for c in columns if c != label_column]
    _require_columns(scenario_names, original, "scenario_columns")
    if label_column is not None:
        _require_columns([label_column], original, "label_column")
    for frame, field in tables:
        _reject_nested(frame, field)
    if subset is not None:
        _require_same_kinds(original, subset)


def _require_same_columns(original: pd.DataFrame, subset: pd.DataFrame) -> None:
    missing = [c for c in original.columns if c not in set(subset.columns)]
    extra = [c for c in subset.columns if c not in set(original.columns)]
    if not missing and not extra:
        return
    problems = []
    if missing:
        problems.append(f"missing from subset: {listing(missing)}")
    if extra:
        problems.append(f"not in original: {listing(extra)}")
    raise InputError(
        f"subset must have the same columns as original ({'; '.join(problems)}); "
        "select the subset's rows from the original without adding, dropping or "
        "renaming columns",
        field="subset",
        value=list(subset.columns),
    )


def _require_columns(names: list[str], original: pd.DataFrame, field: str) -> None:
    available = [str(c) for c in original.columns]
    unknown = [name for name in names if name not in set(original.columns)]
    if not unknown:
        return
    hint = suggest(str(unknown[0]), available)
    shown = repr(unknown[0]) if field == "label_column" else listing(unknown)
    raise InputError(
        f"{field} {shown} not found in original; available columns: "
        f"{listing(available)}{hint}",
        field=field,
        value=unknown if field == "scenario_columns" else unknown[0],
    )


def _reject_nested(frame: pd.DataFrame, field: str) -> None:
    """Reject list, dict and array cells, which cannot be compared as one value."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        nested = frame[column].map(_is_nested).to_numpy(dtype=bool)
        if nested.any():
            first = int(np.flatnonzero(nested)[0])
            raise InputError(
                f"{field} column {column!r} contains nested values (lists, objects or "
                f"arrays) in {int(nested.sum())} rows, first at row {first}; "
                "flatten them into separate columns or drop the column",
                field=field,
                value=str(column),
            )


def _is_nested(value: Any) -> bool:
    return isinstance(value, list | dict | tuple | set | np.ndarray)


def _require_same_kinds(original: pd.DataFrame, subset: pd.DataFrame) -> None:
    """Reject a column that contains numbers in one table and text in the other."""
    mismatched = []
    for column in original.columns:
        if original[column].isna().all() or subset[column].isna().all():
            continue
        kinds = column_kind(original[column]), column_kind(subset[column])
        if kinds[0] != kinds[1]:
            mismatched.append(
                f"{column!r} ({original[column].dtype} in original, "
                f"{subset[column].dtype} in subset)"
            )
    if mismatched:
        raise InputError(
            f"subset columns differ in type from the original: {', '.join(mismatched)};"
            " save both tables in the same format with the same column types, for"
            " example as Parquet",
            field="subset",
            value=mismatched,
        )


def listing(names: Sequence[Any]) -> str:
    """Format column names for a message, listing at most 50 of them."""
    listed = [str(name) for name in names[:_LISTED_COLUMNS]]
    more = len(names) - len(listed)
    return f"{listed}" + (f" and {more} more" if more > 0 else "")
