"""Table rows as float32 feature vectors, and the interface of any featuriser.

The table featuriser is fitted on rows of the original. Numeric columns are
standardised after missing and infinite values are replaced by the original's
median. Datetime and timedelta columns count as numeric, in seconds. Every other
column is one-hot encoded with its values compared as strings. Distances between
encoded rows drive the coverage, cleaning and edge-case measures, so another
featuriser (for example one that embeds images) plugs in through ``Featuriser``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

ColumnKind = Literal["numeric", "time", "categorical"]

# A categorical column keeps its 31 most frequent values as one-hot columns and
# groups the rest into one, so an identifier column cannot dominate distances.
MAX_CATEGORIES = 32
# Values beyond this many standard deviations are clipped, so that the float32
# features and their squared norms stay finite.
MAX_STANDARD = 1e15
# Columns with a larger absolute value are divided by a power of two first, so
# that their mean and standard deviation do not overflow.
LARGE_VALUE = 1e150
# Missing values of a categorical column form one category under this name.
_MISSING = "\x00missing"


class Featuriser(Protocol):
    """Turns table rows into feature vectors whose Euclidean distances compare rows.

    ``fit`` learns from the original's rows at the positions ``rows``.
    ``transform`` returns a C-contiguous float32 array of shape
    ``(len(rows), width)``; all rows when ``rows`` is None.
    """

    @property
    def width(self) -> int: ...

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None: ...

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Numeric:
    """A numeric column's statistics, of its values divided by ``magnitude``."""

    column: str
    median: float
    mean: float
    scale: float
    magnitude: float = 1.0


@dataclass(frozen=True)
class _Categorical:
    column: str
    categories: pd.Index
    # Position of each category's one-hot column; infrequent values share one.
    slots: np.ndarray
    width: int


def column_kind(column: pd.Series) -> ColumnKind:
    """Classify a column: bool and text are categorical, as is anything not numeric."""
    kind = column.dtype.kind
    if kind in "iuf":
        return "numeric"
    return "time" if kind in "mM" else "categorical"


class TableFeaturiser:
    """Standardised numeric columns followed by one-hot categorical columns.

    Columns that are all missing in the fitted rows are left out, as are the
    columns named in ``skip``. A categorical value the original does not contain
    encodes as all zeros.
    """

    def __init__(self, skip: Sequence[str] = ()) -> None:
        self._skip = frozenset(skip)
        self._numeric: list[_Numeric] = []
        self._categorical: list[_Categorical] = []
        self._excluded: list[str] = []

    @property
    def width(self) -> int:
        return len(self._numeric) + sum(c.width for c in self._categorical)

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        self._numeric, self._categorical, self._excluded = [], [], []
        for column in frame.columns:
            if column in self._skip:
                continue
            values = frame[column].iloc[rows]
            if bool(values.isna().all()):
                self._excluded.append(column)
            elif column_kind(values) == "categorical":
                self._categorical.append(_fit_categorical(column, values))
            else:
                self._numeric.append(_fit_numeric(column, values))

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray:
        count = len(frame) if rows is None else len(rows)
        out = np.zeros((count, self.width), dtype=np.float32)
        for position, numeric in enumerate(self._numeric):
            values = numeric_values(_select(frame[numeric.column], rows))
            values[~np.isfinite(values)] = numeric.median
            out[:, position] = _standardise(values, numeric)
        offset = len(self._numeric)
        for categorical in self._categorical:
            labels = category_labels(_select(frame[categorical.column], rows))
            codes = categorical.categories.get_indexer(labels)
            known = np.flatnonzero(codes >= 0)
            out[known, offset + categorical.slots[codes[known]]] = 1.0
            offset += categorical.width
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "numeric": [n.column for n in self._numeric],
            "categorical": [c.column for c in self._categorical],
            "excluded_all_missing": list(self._excluded),
        }


def _select(column: pd.Series, rows: np.ndarray | None) -> pd.Series:
    return column if rows is None else column.iloc[rows]


def _fit_numeric(column: str, values: pd.Series) -> _Numeric:
    numbers = numeric_values(values)
    finite = numbers[np.isfinite(numbers)]
    median = float(np.median(finite))
    numbers[~np.isfinite(numbers)] = median
    magnitude = value_magnitude(numbers)
    numbers /= magnitude
    scale = float(numbers.std())
    # A constant column has no spread to divide by; it encodes as zeros.
    return _Numeric(
        column, median, float(numbers.mean()), scale if scale > 0 else 1.0, magnitude
    )


def value_magnitude(numbers: np.ndarray) -> float:
    """Return 1.0, or for values above 1e150 the power of two just below the largest.

    Dividing by a power of two changes no digit of a value, and the largest
    value becomes at least 1 and below 2.
    """
    largest = float(np.abs(numbers).max()) if len(numbers) else 0.0
    if largest < LARGE_VALUE:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)


def _standardise(values: np.ndarray, numeric: _Numeric) -> np.ndarray:
    """Return ``(values / magnitude - mean) / scale``, clipped to +-1e15."""
    # A subset value far beyond the original's may overflow to infinity here,
    # which the clip turns into the largest finite feature.
    with np.errstate(over="ignore"):
        standard = (values / numeric.magnitude - numeric.mean) / numeric.scale
    return np.clip(standard, -MAX_STANDARD, MAX_STANDARD)


def _fit_categorical(column: str, values: pd.Series) -> _Categorical:
    codes, uniques = pd.factorize(category_labels(values))
    # Most frequent first; equal counts keep their order of first appearance.
    order = np.argsort(-np.bincount(codes), kind="stable")
    categories = pd.Index(uniques[order])
    slots = np.arange(len(categories))
    if len(categories) > MAX_CATEGORIES:
        slots = np.minimum(slots, MAX_CATEGORIES - 1)
    return _Categorical(column, categories, slots, int(slots.max()) + 1)


def numeric_values(column: pd.Series) -> np.ndarray:
    """Return a column as a new float64 array, datetimes and timedeltas in seconds."""
    if column.isna().all():
        return np.full(len(column), np.nan)
    kind = column.dtype.kind
    if kind == "M":
        column = column - pd.Timestamp(0, tz=column.dt.tz)
    if kind in "mM":
        column = column / pd.Timedelta(seconds=1)
    return np.array(column.to_numpy(dtype=np.float64, na_value=np.nan))


def category_labels(column: pd.Series) -> np.ndarray:
    """Return a column's values as strings, with missing values as one category."""
    labels: np.ndarray = column.astype(str).to_numpy(dtype=object)
    labels[column.isna().to_numpy()] = _MISSING
    return labels
