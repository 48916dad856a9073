"""Feature-space coverage and unusual rows, measured on encoded table rows.

Rows are encoded once with transformers fitted on the original. Numeric columns
are standardised after missing and infinite values are replaced by the original's
median. Datetime and timedelta columns count as numeric, in seconds. Every other
column is one-hot encoded with its values compared as strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ColumnKind = Literal["numeric", "time", "categorical"]
# scipy ships no type hints, so mypy treats the sparse half of this alias as Any.
Matrix: TypeAlias = np.ndarray | sparse.csr_matrix

# A categorical column keeps its most frequent values as one-hot columns and
# groups the rest into one, so an identifier column cannot dominate distances.
MAX_CATEGORIES = 32
# Encoded tables up to this many values (80 MB as float64) are made dense, which
# k-means and the isolation forest process faster than sparse input.
DENSE_LIMIT = 10_000_000
MIN_CLUSTERS, MAX_CLUSTERS = 2, 256
MINI_BATCH_ROWS = 10_000
EDGE_CONTAMINATION = 0.05


@dataclass(frozen=True)
class Encoded:
    """Both tables as feature matrices, and which columns went into them."""

    original: Matrix
    subset: Matrix
    numeric: list[str]
    categorical: list[str]
    excluded: list[str]


@dataclass(frozen=True)
class ClusterCoverage:
    """Clusters of the original and the share of its rows the subset reaches."""

    algorithm: str
    n_clusters: int
    clusters: int
    clusters_covered: int
    rows_covered: int
    rows: int
    empty_clusters: list[dict[str, int]]

    @property
    def fraction(self) -> float:
        return self.rows_covered / self.rows


@dataclass(frozen=True)
class EdgeRows:
    """Unusual rows of the original and how many of them the subset has."""

    original_flagged: int
    kept: int
    subset_flagged: int
    subset_rows: int
    subset_rows_unmatched: int

    @property
    def share(self) -> float:
        return self.subset_flagged / self.subset_rows


def column_kind(column: pd.Series) -> ColumnKind:
    """Classify a column: bool and text are categorical, as is anything not numeric."""
    kind = column.dtype.kind
    if kind in "iuf":
        return "numeric"
    return "time" if kind in "mM" else "categorical"


def encode(original: pd.DataFrame, subset: pd.DataFrame) -> Encoded | None:
    """Encode both tables with transformers fitted on the original.

    Columns that are all missing in the original are left out. Returns None when no
    column is left.
    """
    excluded = [c for c in original.columns if bool(original[c].isna().all())]
    usable = [c for c in original.columns if c not in excluded]
    numeric = [c for c in usable if column_kind(original[c]) != "categorical"]
    categorical = [c for c in usable if c not in numeric]
    if not usable:
        return None

    blocks_original: list[Matrix] = []
    blocks_subset: list[Matrix] = []
    if numeric:
        scaler = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        blocks_original.append(scaler.fit_transform(_numbers(original, numeric)))
        blocks_subset.append(scaler.transform(_numbers(subset, numeric)))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", max_categories=MAX_CATEGORIES)
        blocks_original.append(encoder.fit_transform(_labels(original, categorical)))
        blocks_subset.append(encoder.transform(_labels(subset, categorical)))
    return Encoded(
        original=_stack(blocks_original),
        subset=_stack(blocks_subset),
        numeric=numeric,
        categorical=categorical,
        excluded=excluded,
    )


def cluster_count(rows: int, distinct_rows: int) -> int:
    """Return k = clamp(round(sqrt(rows / 2)), 2, 256), at most ``distinct_rows``."""
    k = round(math.sqrt(rows / 2))
    return min(max(k, MIN_CLUSTERS), MAX_CLUSTERS, distinct_rows)


def cluster_coverage(encoded: Encoded) -> ClusterCoverage:
    """Cluster the original with k-means and measure the rows the subset reaches.

    k follows ``cluster_count``. Originals of up to 10,000 rows use ``KMeans``,
    larger ones ``MiniBatchKMeans``, both with 3 initialisations and
    random_state=0. Each subset row goes to its nearest centroid. A cluster is
    covered when it receives a subset row, and coverage is the share of original
    rows in covered clusters.
    """
    rows = encoded.original.shape[0]
    k = cluster_count(rows, _distinct_rows(encoded.original))
    model: KMeans | MiniBatchKMeans
    if rows <= MINI_BATCH_ROWS:
        model = KMeans(n_clusters=k, n_init=3, random_state=0)
    else:
        model = MiniBatchKMeans(n_clusters=k, n_init=3, random_state=0)
    labels = model.fit(encoded.original).labels_
    sizes = np.bincount(labels, minlength=k)
    reached = np.zeros(k, dtype=bool)
    reached[model.predict(encoded.subset)] = True

    return ClusterCoverage(
        algorithm=type(model).__name__,
        n_clusters=k,
        clusters=int((sizes > 0).sum()),
        clusters_covered=int(((sizes > 0) & reached).sum()),
        rows_covered=int(sizes[reached].sum()),
        rows=rows,
        empty_clusters=_empty_clusters(labels, sizes, reached),
    )


def edge_rows(
    original: pd.DataFrame, subset: pd.DataFrame, encoded: Encoded
) -> EdgeRows:
    """Flag the most unusual 5% of original rows and count those in the subset.

    An isolation forest (random_state=0) fitted on the encoded original flags the
    rows. A subset row equal in every column to an original row shares its flag;
    the forest scores any other subset row. ``kept`` counts flagged original rows
    whose values occur in the subset, so duplicates of one kept row all count.
    """
    forest = IsolationForest(contamination=EDGE_CONTAMINATION, random_state=0)
    flagged = forest.fit_predict(encoded.original) == -1
    original_ids, subset_ids = row_ids(original, subset)
    distinct = int(original_ids.max()) + 1
    flagged_ids = np.zeros(distinct, dtype=bool)
    flagged_ids[original_ids[flagged]] = True

    matched = subset_ids < distinct
    subset_flagged = np.zeros(len(subset_ids), dtype=bool)
    subset_flagged[matched] = flagged_ids[subset_ids[matched]]
    if not matched.all():
        unmatched = np.flatnonzero(~matched)
        subset_flagged[unmatched] = forest.predict(encoded.subset[unmatched]) == -1
    return EdgeRows(
        original_flagged=int(flagged.sum()),
        kept=int(np.isin(original_ids[flagged], subset_ids).sum()),
        subset_flagged=int(subset_flagged.sum()),
        subset_rows=len(subset_ids),
        subset_rows_unmatched=int((~matched).sum()),
    )


def row_ids(
    original: pd.DataFrame, subset: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Number distinct rows so that equal rows of both tables get equal numbers.

    The original's rows get 0..n-1, so a subset id of n or more marks a row that
    the original does not contain.
    """
    columns = list(original.columns)
    combined = pd.concat([original, subset[columns]], ignore_index=True)
    ids = combined.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
    return ids[: len(original)], ids[len(original) :]


def _numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    matrix = np.column_stack([_as_float(frame[column]) for column in columns])
    matrix[~np.isfinite(matrix)] = np.nan
    return matrix


def _as_float(column: pd.Series) -> np.ndarray:
    """Return a column as float64, with datetimes and timedeltas in seconds."""
    if column.isna().all():
        return np.full(len(column), np.nan)
    kind = column.dtype.kind
    if kind == "M":
        column = column - pd.Timestamp(0, tz=column.dt.tz)
    if kind in "mM":
        column = column / pd.Timedelta(seconds=1)
    return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))


def _labels(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Return the columns as strings in an object array, with None where missing."""
    matrix = np.empty((len(frame), len(columns)), dtype=object)
    for position, column in enumerate(columns):
        values = frame[column].astype(str).to_numpy(dtype=object)
        values[frame[column].isna().to_numpy()] = None
        matrix[:, position] = values
    return matrix


def _stack(blocks: list[Matrix]) -> Matrix:
    if len(blocks) == 1 and not sparse.issparse(blocks[0]):
        return blocks[0]
    stacked = sparse.hstack(blocks, format="csr")
    if stacked.shape[0] * stacked.shape[1] <= DENSE_LIMIT:
        return np.asarray(stacked.toarray())
    return stacked


def _distinct_rows(matrix: Matrix) -> int:
    if not sparse.issparse(matrix):
        return len(np.unique(matrix, axis=0))
    rows = sparse.csr_matrix(matrix, copy=True)
    rows.eliminate_zeros()
    rows.sort_indices()
    bounds = zip(rows.indptr[:-1], rows.indptr[1:], strict=True)
    return len(
        {
            rows.indices[start:end].tobytes() + rows.data[start:end].tobytes()
            for start, end in bounds
        }
    )


def _empty_clusters(
    labels: np.ndarray, sizes: np.ndarray, reached: np.ndarray
) -> list[dict[str, int]]:
    """List the clusters with original rows but no subset row, largest first."""
    clusters, first_rows = np.unique(labels, return_index=True)
    example = dict(zip(clusters.tolist(), first_rows.tolist(), strict=True))
    empty = np.flatnonzero((sizes > 0) & ~reached)
    empty = empty[np.argsort(-sizes[empty], kind="stable")]
    return [
        {"cluster": int(c), "original_rows": int(sizes[c]), "example_row": example[c]}
        for c in empty
    ]
