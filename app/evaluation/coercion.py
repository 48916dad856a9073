"""Reading of number columns in which a few cells are not numbers.

One cell such as ``hello`` in a column of numbers makes the CSV reader keep the
whole column as text, so the column would be compared as categories. A text
column of the original in which at least 95% of the non-missing cells are
numbers is read as numeric instead. A cell that is not a number becomes a
missing value, its row is reported as invalid, and a reader note names the
column, the count and the first rows with their values. The subset follows the
original's column kinds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.evaluation.readers import NOTES_KEY, reading_notes

# Share of the non-missing cells of an original column that must be numbers.
MIN_NUMERIC_SHARE = 0.95
# A subset column is read as numbers when the original's column is numeric and
# at least this share of its cells are numbers. A smaller subset makes one bad
# cell a larger share, and a column of words still fails the kind check.
SUBSET_MIN_SHARE = 0.5
MAX_LISTED = 5
# Cells parsed at a time, so a column of words stops early, once its cells that
# are not numbers exceed the allowed share.
_CHUNK = 65_536
# float64 represents every integer below 2**53 exactly, but not all above it.
_EXACT_INTEGERS = 2.0**53
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


@dataclass(frozen=True)
class Coerced:
    """The tables with their numeric columns restored.

    ``unparsed`` maps each restored column of the original to the positions of
    its rows whose cell was not a number.
    """

    original: pd.DataFrame
    subset: pd.DataFrame
    unparsed: dict[str, np.ndarray]

    def invalid_rows(self) -> np.ndarray:
        """Return the sorted positions of the original's rows with such a cell."""
        if not self.unparsed:
            return np.empty(0, dtype=np.int64)
        return np.unique(np.concatenate(list(self.unparsed.values())))


@dataclass(frozen=True)
class _Parsed:
    numbers: pd.Series
    # Cells that have a value which is not a number.
    bad: np.ndarray


def coerce_numeric_columns(
    original: pd.DataFrame,
    subset: pd.DataFrame,
    *,
    text_numbers: tuple[bool, bool],
) -> Coerced:
    """Read the text columns that are nearly all numbers as float64.

    ``text_numbers`` sets, for the original and the subset, whether a string
    cell that spells a number counts as a number. That is so for CSV, where
    every cell is text. It is not so for JSON Lines, where a string such as
    ``"02134"`` is text on purpose and only JSON numbers count. A column with
    an integer of 2**53 or more stays text, so distinct long identifiers never
    become equal numbers.
    """
    if not (original.columns.is_unique and subset.columns.is_unique):
        # Validation rejects repeated column names with its own message.
        return Coerced(original, subset, {})
    # Copy-on-write makes the shallow copies independent once a column changes.
    original, subset = original.copy(deep=False), subset.copy(deep=False)
    unparsed: dict[str, np.ndarray] = {}
    for column in original.columns:
        parsed = _parse(original[column], text_numbers[0], MIN_NUMERIC_SHARE)
        if parsed is None:
            continue
        _add_note(original, column, parsed.bad, "original", text_numbers[0])
        original[column] = parsed.numbers
        unparsed[str(column)] = np.flatnonzero(parsed.bad)
    for column in original.columns:
        if original[column].dtype.kind not in "iuf" or column not in subset:
            continue
        parsed = _parse(subset[column], text_numbers[1], SUBSET_MIN_SHARE)
        if parsed is None:
            continue
        _add_note(subset, column, parsed.bad, "subset", text_numbers[1])
        subset[column] = parsed.numbers
    return Coerced(original, subset, unparsed)


def _parse(column: pd.Series, text_numbers: bool, min_share: float) -> _Parsed | None:
    """Parse a text column whose share of numbers is at least ``min_share``.

    Returns None for a column that is not text, has no value, has fewer
    numbers, or has an integer that float64 cannot represent exactly.
    """
    present = column.notna().to_numpy()
    if column.dtype.kind != "O" or not present.any():
        return None
    cells = _candidates(column, text_numbers)
    allowed = (1.0 - min_share) * int(present.sum())
    parts, bad_count = [], 0
    for start in range(0, len(cells), _CHUNK):
        part = pd.to_numeric(cells.iloc[start : start + _CHUNK], errors="coerce")
        stop = start + len(part)
        bad_count += int((part.isna().to_numpy() & present[start:stop]).sum())
        if bad_count > allowed:
            return None
        parts.append(part.astype(np.float64))
    numbers = pd.concat(parts)
    if _has_long_integers(column, numbers.to_numpy()):
        return None
    return _Parsed(numbers, present & numbers.isna().to_numpy())


def _candidates(column: pd.Series, text_numbers: bool) -> pd.Series:
    """Return the column with the cells that cannot count as numbers blanked."""
    if text_numbers and column.dtype == "str":
        return column
    cells = column.astype(object)
    countable = cells.map(lambda cell: _counts(cell, text_numbers)).to_numpy(bool)
    return cells.where(countable)


def _counts(cell: object, text_numbers: bool) -> bool:
    """Tell whether a cell may count as a number: True and False never do."""
    if isinstance(cell, bool | np.bool_):
        return False
    return text_numbers or not isinstance(cell, str)


def _has_long_integers(column: pd.Series, numbers: np.ndarray) -> bool:
    with np.errstate(invalid="ignore"):
        large = np.flatnonzero(np.abs(numbers) >= _EXACT_INTEGERS)
    for cell in column.iloc[large]:
        if isinstance(cell, int | np.integer):
            return True
        if isinstance(cell, str) and _INTEGER.fullmatch(cell):
            return True
    return False


def _add_note(
    frame: pd.DataFrame, column: str, bad: np.ndarray, role: str, text: bool
) -> None:
    rows = np.flatnonzero(bad)
    if len(rows) == 0:
        return
    listed = ", ".join(
        f"row {int(row)} {frame[column].iloc[row]!r}" for row in rows[:MAX_LISTED]
    )
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    counted = "numbers" if text else "JSON numbers"
    outcome = (
        "read as missing, and their rows count as invalid (see "
        "details.cleaning.invalid.unparsed_number)"
        if role == "original"
        else "read as missing"
    )
    present = int(frame[column].notna().sum())
    frame.attrs[NOTES_KEY] = [
        *reading_notes(frame),
        f"column {column!r} is read as numeric because {present - len(rows)} of "
        f"its {present} non-missing cells are {counted}; the {len(rows)} other "
        f"cells are {outcome}: {listed}{more} (rows counted from 0)",
    ]
