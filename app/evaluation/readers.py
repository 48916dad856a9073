"""Read uploaded tables and labelled evaluation sets from files on the server.

Uploads are stored under a content hash without a suffix, so the format comes from
the client's file name when one is given and is confirmed by the file's first bytes.
NumPy files are always read with ``allow_pickle=False``: an object array is rejected
before any of it is loaded. Parsers receive opened file objects, never a path or URL
taken from a request.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.images import is_image_name
from app.evaluation.numpy_files import (
    error_summary,
    read_npy_table,
    read_npz_labelled,
    read_npz_table,
    upload_name,
)
from app.evaluation.upload_limits import check_line_lengths, check_parquet_footer

FORMAT_NAMES = {
    "csv": "CSV",
    "jsonl": "JSON Lines",
    "parquet": "Parquet",
    "npy": "NumPy .npy",
    "npz": "NumPy .npz",
    "zip": "zip archive of PNG or JPEG images",
}
SUFFIXES = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".npy": "npy",
    ".npz": "npz",
    ".zip": "zip",
}
SUPPORTED = (
    "CSV (.csv), JSON Lines (.jsonl, .ndjson), Parquet (.parquet), .npy, .npz, "
    "zip of PNG or JPEG images (.zip, data gate only)"
)
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")

_BINARY = {"parquet", "npy", "npz", "zip"}
_HEAD_BYTES = 65536
_NUMERIC_KINDS = "biuf"

# Key of ``DataFrame.attrs`` listing what a reader left out of the table.
NOTES_KEY = "reader_notes"
_DELIMITERS = ",;\t|"
# The delimiter is guessed from the start of a CSV file: enough lines to see a
# consistent field count. csv.Sniffer's time grows faster than linearly with
# the sample: 16 KiB took about ten times as long as 4 KiB in bench/csv_reading.py.
_SNIFF_BYTES = 4096
# Read as missing values, like pandas' default NaN, nan and empty cells, so an
# infinity is neither a number nor a category.
_INFINITIES = [
    sign + word
    for sign in ("", "+", "-")
    for word in ("inf", "Inf", "INF", "infinity", "Infinity", "INFINITY")
]


class _TableProblem(Exception):
    """A table a parser rejects, with the reason as its message."""


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

    _reject_tar(head, field, filename)
    sniffed = _sniff(head)
    if sniffed == "npz":
        sniffed = _zip_kind(path)
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


def _zip_kind(path: Path) -> str:
    """Tell a zip of images (``zip``) from a NumPy ``.npz`` by its member names.

    Only the central directory is read. An archive with a PNG or JPEG member
    and no ``.npy`` member is a zip of images. Any other archive, damaged ones
    included, is left to the ``.npz`` reader and its messages.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError):
        return "npz"
    if any(name.endswith(".npy") for name in names):
        return "npz"
    return "zip" if any(is_image_name(name) for name in names) else "npz"


def _reject_tar(head: bytes, field: str, filename: str | None) -> None:
    """Reject tar archives, by suffix or by the ``ustar`` magic at offset 257."""
    name = (filename or "").lower()
    if head[257:262] == b"ustar" or name.endswith(_TAR_SUFFIXES):
        raise UnsupportedFormatError(
            f"{upload_name(field, filename)} is a tar archive; tar is not read, "
            "so send the images as a zip archive instead (for example "
            "`zip -r images.zip images/`)",
            field=field,
            value=filename,
        )


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
    if {claimed, sniffed} == {"zip", "npz"}:
        # Both are zip archives, so the reader of the claimed kind reports what
        # is missing from it.
        return
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
    elif fmt == "zip":
        raise UnsupportedFormatError(
            f"{upload_name(field, filename)} is a zip archive of images; image "
            "archives are read only as the original and subset of a data gate, "
            "so send a table here",
            field=field,
            value=filename,
        )
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
            _check_size(handle, fmt, upload_name(field, filename), field)
            return readers[fmt](handle)
        except _TableProblem as exc:
            raise InputError(
                f"{upload_name(field, filename)} could not be read as "
                f"{FORMAT_NAMES[fmt]}: {exc}",
                field=field,
                value=filename,
            ) from None
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
            csv.Error,
            OSError,
            TypeError,
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
    """Read CSV whose delimiter is a comma, semicolon, tab or pipe.

    Raises:
        _TableProblem: the header row names a column more than once.
    """
    delimiter = _sniff_delimiter(handle.read(_SNIFF_BYTES))
    handle.seek(0)
    _reject_duplicate_names(_header_row(handle, delimiter))
    handle.seek(0)
    # low_memory=False parses each column in one pass, so a column never gets
    # mixed types from chunked type inference. A one-character delimiter keeps
    # pandas on its C parser.
    return pd.read_csv(
        handle,
        sep=delimiter,
        encoding="utf-8-sig",
        low_memory=False,
        na_values=_INFINITIES,
    )


def _sniff_delimiter(head: bytes) -> str:
    """Guess the delimiter from whole lines at the file's start, else a comma."""
    cut = head.rfind(b"\n")
    sample = (head[:cut] if cut > 0 else head).decode("utf-8-sig", errors="replace")
    try:
        guessed = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","
    first_line = sample.splitlines()[0] if sample else ""
    # A one-column file with a ';' in its values must stay comma-separated, so
    # another delimiter wins only when it splits the header into more fields.
    if _field_count(first_line, guessed) > _field_count(first_line, ","):
        return guessed
    return ","


def _field_count(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def _header_row(handle: IO[bytes], delimiter: str) -> list[str]:
    """Return the first non-blank row, parsed as CSV (quoted newlines allowed)."""
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        for row in csv.reader(text, delimiter=delimiter):
            if any(cell.strip() for cell in row):
                return row
        return []
    finally:
        # Detaching keeps the wrapper from closing the caller's handle.
        text.detach()


def _reject_duplicate_names(names: list[str]) -> None:
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise _TableProblem(
            f"the header row names the columns {repeated} more than once; give "
            "every column a unique name"
        )


def _parse_jsonl(handle: IO[bytes]) -> pd.DataFrame:
    """Read JSON Lines whose every line is one object.

    Raises:
        _TableProblem: a line is an array or a bare value, not an object.
        TypeError, ValueError: pandas cannot read the file for another reason.
    """
    # dtype=False keeps JSON strings as strings: "02134" must not become 2134.
    # precise_float=True parses 5.1 to the same double as CSV and Parquet readers,
    # so rows of a subset in one format match the original in another.
    try:
        return pd.read_json(
            handle, lines=True, encoding="utf-8-sig", dtype=False, precise_float=True
        )
    # pandas raises TypeError or ValueError when objects and other values
    # share a file, with a message that names neither.
    except (TypeError, ValueError):
        handle.seek(0)
        problem = _first_non_object(handle)
        if problem is None:
            raise
        raise _TableProblem(problem) from None


def _first_non_object(handle: IO[bytes]) -> str | None:
    """Describe the first line of a JSON Lines file that is not an object."""
    for number, line in enumerate(handle, start=1):
        text = line.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            kind = "an array" if isinstance(value, list) else "a bare value"
            return (
                f"line {number} is {kind}, not an object; write one JSON object "
                'per line, such as {"column": 1}'
            )
    return None


def _check_size(handle: IO[bytes], fmt: str, source: str, field: str) -> None:
    """Run the size checks of ``upload_limits`` and rewind ``handle``."""
    if fmt == "parquet":
        check_parquet_footer(handle, source=source, field=field)
    else:
        check_line_lengths(handle, source=source, field=field)
    handle.seek(0)


def _parse_parquet(handle: IO[bytes]) -> pd.DataFrame:
    """Read Parquet, decoding dictionary columns and leaving out nested ones.

    A nested column (struct, list or map) is dropped and named in the frame's
    ``attrs[NOTES_KEY]``.

    Raises:
        _TableProblem: the schema names a column more than once.
    """
    parquet = pq.ParquetFile(handle)
    _reject_duplicate_names(parquet.schema_arrow.names)
    table = parquet.read()
    nested = [field for field in table.schema if pa.types.is_nested(field.type)]
    table = table.drop_columns([field.name for field in nested])
    frame = _decode_dictionaries(table).to_pandas()
    if nested:
        described = ", ".join(
            f"{field.name!r} ({_nested_kind(field.type)})" for field in nested
        )
        frame.attrs[NOTES_KEY] = [
            f"nested columns skipped: {described}; struct, list and map values "
            "are not compared"
        ]
    return frame


def _nested_kind(data_type: pa.DataType) -> str:
    if pa.types.is_struct(data_type):
        return "struct"
    if pa.types.is_map(data_type):
        return "map"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return "list"
    return str(data_type)


def _decode_dictionaries(table: pa.Table) -> pa.Table:
    """Cast dictionary-encoded columns to their value type.

    pandas would read them as categoricals, whose rows do not compare equal to
    the same values read from a plain column.
    """
    for position, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            plain = table.column(position).cast(field.type.value_type)
            table = table.set_column(position, field.name, plain)
    return table


def reading_notes(frame: pd.DataFrame) -> list[str]:
    """Return what the reader of ``frame`` left out, one sentence each."""
    return list(frame.attrs.get(NOTES_KEY, []))


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
