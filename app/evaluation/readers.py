"""Read uploaded tables and labelled evaluation sets from files on the server.

Uploads are stored under a content hash without a suffix, so the format comes from
the client's file name when one is given and is confirmed by the file's first bytes.
NumPy files are always read with ``allow_pickle=False``: an object array is rejected
before any of it is loaded. Parsers receive opened file objects, never a path or URL
taken from a request.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.numpy_files import (
    error_summary,
    read_npy_table,
    read_npz_labelled,
    read_npz_table,
    upload_name,
)

FORMAT_NAMES = {
    "csv": "CSV",
    "jsonl": "JSON Lines",
    "parquet": "Parquet",
    "npy": "NumPy .npy",
    "npz": "NumPy .npz",
}
SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".npy": "npy",
    ".npz": "npz",
}
SUPPORTED = "CSV (.csv), JSON Lines (.jsonl, .ndjson), Parquet (.parquet), .npy, .npz"

_BINARY = {"parquet", "npy", "npz"}
_HEAD_BYTES = 65536
_NUMERIC_KINDS = "biuf"


def detect_format(path: Path, *, field: str, filename: str | None = None) -> str:
    """Return the format key of a stored upload, one of ``FORMAT_NAMES``.

    The suffix of ``filename`` decides between formats. The first bytes confirm it:
    a binary format must carry its signature, and a text suffix on a binary file is
    rejected. Without a suffix the first bytes decide, and text that is not JSON
    Lines is read as CSV.

    Raises:
        InputError: the file is empty, or its content contradicts its suffix.
        UnsupportedFormatError: the suffix or the content is not a supported format.
    """
    head = _read_head(path)
    if not head:
        raise InputError(
            f"{upload_name(field, filename)} is empty (0 bytes); upload a non-empty "
            f"file in one of the supported formats: {SUPPORTED}",
            field=field,
            value=filename,
        )

    sniffed = _sniff(head)
    claimed = _format_from_suffix(filename, field)
    if claimed is None:
        if sniffed is None:
            raise UnsupportedFormatError(
                f"{upload_name(field, filename)} is a binary file of unknown format; "
                f"supported formats: {SUPPORTED}",
                field=field,
                value=filename,
            )
        return sniffed
    _confirm(claimed, sniffed, field, filename)
    return claimed


def read_table(path: Path, *, field: str, filename: str | None = None) -> pd.DataFrame:
    """Read an uploaded table with at least one row and string column names.

    A ``.npy`` array becomes columns ``f0`` .. ``f{n-1}``: a 1-D array gives one
    column and trailing dimensions past the second are flattened. A ``.npz`` file
    with ``X`` gives its feature columns, plus column ``label`` from ``y`` when
    present. A ``.npz`` file without ``X`` must contain exactly one array.

    Raises:
        InputError: the file is empty, corrupt, has no rows, or has an array the
            table cannot contain. The message names ``field``.
        UnsupportedFormatError: the format is not supported.
    """
    fmt = detect_format(path, field=field, filename=filename)
    return _read_frame(path, fmt, field, filename)


def read_labelled(
    path: Path, *, field: str, label_column: str, filename: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read an evaluation set and return its features ``X`` and labels ``y``.

    A ``.npz`` file must contain arrays ``X`` (numeric, at least 2-D, first axis the
    samples) and ``y``, and ``label_column`` is not used. Any other format is read
    as a table whose ``label_column`` contains the labels and whose other columns are
    all numeric. ``X`` keeps the stored dtype of a ``.npz`` file. From a table it is
    int64 when every feature column is integer or bool and no value is missing, else
    float64 with NaN for missing values. ``y`` is 1-D.

    Raises:
        InputError: the label column or an array is missing, a feature column is
            not numeric, a label is missing, or ``X`` and ``y`` differ in length.
        UnsupportedFormatError: the format is not supported.
    """
    fmt = detect_format(path, field=field, filename=filename)
    if fmt == "npz":
        return read_npz_labelled(path, field, filename)
    frame = _read_frame(path, fmt, field, filename)
    return _split_label(frame, field, label_column)


def suggest(name: str, choices: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _read_head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(_HEAD_BYTES)


def _sniff(head: bytes) -> str | None:
    """Return the format the first bytes show, or None for unknown binary data."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if b"\x00" in head:
        return None
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if text.startswith(b"{") else "csv"


def _format_from_suffix(filename: str | None, field: str) -> str | None:
    if not filename:
        return None
    # Clients may send Windows paths, so both separators end the directory part.
    suffix = PurePosixPath(PureWindowsPath(filename).name).suffix.lower()
    if not suffix:
        return None
    if suffix not in SUFFIXES:
        raise UnsupportedFormatError(
            f"{field} {filename!r} has the unsupported suffix {suffix!r}; "
            f"supported formats: {SUPPORTED}",
            field=field,
            value=filename,
        )
    return SUFFIXES[suffix]


def _confirm(
    claimed: str, sniffed: str | None, field: str, filename: str | None
) -> None:
    if claimed in _BINARY and sniffed != claimed:
        raise InputError(
            f"{upload_name(field, filename)} is not a valid "
            f"{FORMAT_NAMES[claimed]} file: it does not start with the format's "
            "signature bytes; the file is "
            "corrupt or has the wrong suffix",
            field=field,
            value=filename,
        )
    if claimed not in _BINARY and sniffed is not None and sniffed in _BINARY:
        raise InputError(
            f"{upload_name(field, filename)} has a {FORMAT_NAMES[claimed]} suffix but "
            f"contains {FORMAT_NAMES[sniffed]} data; upload the file under a name "
            "with the matching suffix",
            field=field,
            value=filename,
        )


def _read_frame(path: Path, fmt: str, field: str, filename: str | None) -> pd.DataFrame:
    if fmt == "npy":
        frame = read_npy_table(path, field, filename)
    elif fmt == "npz":
        frame = read_npz_table(path, field, filename)
    else:
        frame = _parse(path, fmt, field, filename)
    return _check_frame(frame, fmt, field, filename)


def _parse(path: Path, fmt: str, field: str, filename: str | None) -> pd.DataFrame:
    readers: dict[str, Callable[[IO[bytes]], pd.DataFrame]] = {
        "csv": _parse_csv,
        "jsonl": _parse_jsonl,
        "parquet": _parse_parquet,
    }
    # The file is opened outside the try block: a missing stored file is a server
    # fault, and its OSError must not be reported as a bad upload.
    with path.open("rb") as handle:
        try:
            return readers[fmt](handle)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{upload_name(field, filename)} is not valid UTF-8 text (invalid "
                f"byte at position {exc.start}); save the {FORMAT_NAMES[fmt]} file "
                "as UTF-8",
                field=field,
                value=filename,
            ) from None
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            pa.ArrowException,
            OSError,
            ValueError,
        ) as exc:
            raise InputError(
                f"{upload_name(field, filename)} could not be read as "
                f"{FORMAT_NAMES[fmt]} ({error_summary(exc)}); check that the file is "
                "complete and well-formed",
                field=field,
                value=filename,
            ) from None


def _parse_csv(handle: IO[bytes]) -> pd.DataFrame:
    # low_memory=False parses each column in one pass, so a column never gets
    # mixed types from chunked type inference.
    return pd.read_csv(handle, encoding="utf-8-sig", low_memory=False)


def _parse_jsonl(handle: IO[bytes]) -> pd.DataFrame:
    # dtype=False keeps JSON strings as strings: "02134" must not become 2134.
    # precise_float=True parses 5.1 to the same double as CSV and Parquet readers,
    # so rows of a subset in one format match the original in another.
    return pd.read_json(
        handle, lines=True, encoding="utf-8-sig", dtype=False, precise_float=True
    )


def _parse_parquet(handle: IO[bytes]) -> pd.DataFrame:
    return pq.read_table(handle).to_pandas()


def _check_frame(
    frame: pd.DataFrame, fmt: str, field: str, filename: str | None
) -> pd.DataFrame:
    if frame.shape[1] == 0:
        raise InputError(
            f"{upload_name(field, filename)} has no columns; a {FORMAT_NAMES[fmt]} "
            "table needs at least one column",
            field=field,
            value=filename,
        )
    if frame.shape[0] == 0:
        raise InputError(
            f"{upload_name(field, filename)} has columns but no rows; upload a table "
            "with at least one data row",
            field=field,
            value=filename,
        )

    frame.columns = pd.Index([str(column) for column in frame.columns])
    return frame.reset_index(drop=True)


def _split_label(
    frame: pd.DataFrame, field: str, label_column: str
) -> tuple[np.ndarray, np.ndarray]:
    columns = list(frame.columns)
    if label_column not in columns:
        raise InputError(
            f"label_column {label_column!r} not found in {field}; available "
            f"columns: {columns}{suggest(label_column, columns)}",
            field="label_column",
            value=label_column,
        )

    labels = frame[label_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())[:10].tolist()
        raise InputError(
            f"label_column {label_column!r} of {field} has {int(labels.isna().sum())} "
            f"missing labels (first rows {rows}); give every row a label",
            field="label_column",
            value=label_column,
        )
    features = frame.drop(columns=[label_column])
    return _numeric_matrix(features, field), labels.to_numpy()


def _numeric_matrix(features: pd.DataFrame, field: str) -> np.ndarray:
    if features.shape[1] == 0:
        raise InputError(
            f"{field} has only the label column; add at least one feature column",
            field=field,
            value=list(features.columns),
        )
    kinds = {column: features[column].dtype.kind for column in features.columns}
    text = [column for column, kind in kinds.items() if kind not in _NUMERIC_KINDS]
    if text:
        raise InputError(
            f"{field} has non-numeric feature columns {text}; every column except "
            "the label column must contain numbers: encode or drop these columns",
            field=field,
            value=text,
        )

    integral = all(kind in "biu" for kind in kinds.values())
    has_missing = bool(features.isna().to_numpy().any())
    if integral and not has_missing:
        return np.asarray(features.to_numpy(dtype=np.int64))
    return np.asarray(features.to_numpy(dtype=np.float64, na_value=np.nan))
