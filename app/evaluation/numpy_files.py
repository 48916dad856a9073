"""Read NumPy ``.npy`` and ``.npz`` uploads without unpickling anything.

Every array header is checked before its data is read: an object array is
rejected before any of it is loaded, and an array whose declared shape needs
more bytes than the file holds, or more than ``MAX_ARRAY_BYTES``, is rejected
before NumPy allocates it. Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from tokenize import TokenError
from typing import IO

import numpy as np
import pandas as pd

from app.errors import InputError, PayloadTooLargeError

LABEL = "label"
# The largest array read into memory. A compressed .npz member can declare far
# more than the upload's size, so the upload limit alone does not bound it.
MAX_ARRAY_BYTES = 2 * 1024**3

_TABLE_KINDS = "biufU"
_NUMERIC_KINDS = "biuf"
_KIND_NAMES = "numbers (bool, integer, float) or unicode strings"


_PYTHON2_HEADER = "Reading `.npy` or `.npz` file required additional header parsing"


def read_npy_table(path: Path, field: str, filename: str | None) -> pd.DataFrame:
    """Read a ``.npy`` array as a table with columns ``f0`` .. ``f{n-1}``."""
    return _table_from_array(_load_npy(path, field, filename), field, filename)


def read_npz_table(path: Path, field: str, filename: str | None) -> pd.DataFrame:
    """Read a ``.npz`` file as a table.

    ``X`` becomes columns ``f0`` .. ``f{n-1}`` and ``y``, when present, column
    ``label``. Other arrays next to ``X`` are ignored. Without ``X`` the file must
    contain exactly one array.
    """

    def pick(names: list[str]) -> list[str]:
        if "X" in names:
            return ["X", "y"] if "y" in names else ["X"]
        if len(names) > 1:
            raise InputError(
                f"{upload_name(field, filename)} contains the arrays {names} but no "
                "'X'; save the features as X (and labels as y), or save a single "
                "array",
                field=field,
                value=names,
            )
        return names

    arrays = _load_npz(path, field, filename, pick)
    features = arrays.get("X", next(iter(arrays.values())))
    frame = _table_from_array(features, field, filename)
    if "y" in arrays:
        labels = _labels_from_array(arrays["y"], len(frame), field, filename)
        frame[LABEL] = labels
    return frame


def read_npz_labelled(
    path: Path, field: str, filename: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Read arrays ``X`` (numeric, at least 2-D) and ``y`` (1-D) from a ``.npz`` file.

    Both keep their stored dtype. A ``y`` of shape (n, 1) is flattened.
    """

    def pick(names: list[str]) -> list[str]:
        missing = [name for name in ("X", "y") if name not in names]
        if missing:
            raise InputError(
                f"{upload_name(field, filename)} has no array {' or '.join(missing)} "
                f"(found {names}); save the evaluation set with "
                "numpy.savez(file, X=features, y=labels)",
                field=field,
                value=names,
            )
        return ["X", "y"]

    arrays = _load_npz(path, field, filename, pick)
    features = arrays["X"]
    _require_kind(features, _NUMERIC_KINDS, "numbers", field, filename)
    if features.ndim < 2 or features.shape[0] == 0:
        raise InputError(
            f"{upload_name(field, filename)}: X has shape {features.shape}; "
            "expected at least 2 dimensions and 1 row, with examples along the first "
            "axis",
            field=field,
            value=list(features.shape),
        )
    labels = _labels_from_array(arrays["y"], features.shape[0], field, filename)
    return features, labels


def upload_name(field: str, filename: str | None) -> str:
    """Name an upload in a message: the field, then the client's file name if any."""
    return f"{field} {filename!r}" if filename else field


def error_summary(exc: BaseException) -> str:
    """Return the first line of an error message, cut to 200 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _load_npy(path: Path, field: str, filename: str | None) -> np.ndarray:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        return _read_npy(handle, size, field, filename, "the array")


def _read_npy(
    handle: IO[bytes],
    size: int,
    field: str,
    filename: str | None,
    array_label: str,
) -> np.ndarray:
    """Read one ``.npy`` stream of ``size`` bytes after checking its header."""
    with warnings.catch_warnings():
        # NumPy warns when a header was written by Python 2; such a file still
        # reads correctly, so the warning is not passed on to the client.
        warnings.filterwarnings("ignore", message=_PYTHON2_HEADER, category=UserWarning)
        return _read_checked_npy(handle, size, field, filename, array_label)


def _read_checked_npy(
    handle: IO[bytes],
    size: int,
    field: str,
    filename: str | None,
    array_label: str,
) -> np.ndarray:
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        if dtype.hasobject:
            raise InputError(
                f"{upload_name(field, filename)}: {array_label} has dtype object "
                "(Python objects), which is never unpickled; save a numeric or string "
                "array instead",
                field=field,
                value=filename,
            )
        where = f"{upload_name(field, filename)}: {array_label}"
        _check_declared_size(shape, dtype, size - handle.tell(), where, field)
        handle.seek(0)
        return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))
    # NumPy parses a header with ast and, for old files, tokenize, which raise
    # SyntaxError, TokenError or RecursionError on a damaged header.
    except (
        ValueError,
        OSError,
        EOFError,
        SyntaxError,
        TokenError,
        RecursionError,
    ) as exc:
        raise InputError(
            f"{upload_name(field, filename)}: {array_label} could not be read as .npy "
            f"({error_summary(exc)}); save it again with numpy.save or numpy.savez",
            field=field,
            value=filename,
        ) from None


def _load_npz(
    path: Path,
    field: str,
    filename: str | None,
    select: Callable[[list[str]], list[str]],
) -> dict[str, np.ndarray]:
    """Load the arrays that ``select`` picks from the names in an ``.npz`` file."""
    with path.open("rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                members = _npz_members(archive, field, filename)
                arrays = {}
                for name in select(sorted(members)):
                    member = archive.getinfo(members[name])
                    with archive.open(member) as handle:
                        arrays[name] = _read_npy(
                            handle, member.file_size, field, filename, f"array {name!r}"
                        )
                return arrays
        # Besides bad headers, zipfile raises NotImplementedError for an unknown
        # compression method and RuntimeError for an encrypted member.
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            NotImplementedError,
            RuntimeError,
            zlib.error,
        ) as exc:
            raise InputError(
                f"{upload_name(field, filename)} could not be read as .npz "
                f"({error_summary(exc)}); save it again with numpy.savez",
                field=field,
                value=filename,
            ) from None


def _check_declared_size(
    shape: tuple[int, ...], dtype: np.dtype, available: int, where: str, field: str
) -> None:
    """Reject a header whose shape needs more bytes than follow it, or too many.

    Python integers do not overflow, so a forged shape of huge dimensions gives
    a huge byte count here. NumPy 2.4 multiplies the shape in int64, where
    (2**40, 2**40) wraps around to 0 elements.
    """
    if any(dimension < 0 for dimension in shape):
        raise InputError(
            f"{where} declares the negative shape {shape}; the file is corrupt, "
            "save it again with numpy.save or numpy.savez",
            field=field,
            value=list(shape),
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared > MAX_ARRAY_BYTES:
        raise PayloadTooLargeError(
            f"{where} declares shape {shape} of dtype {dtype}, {declared:,} bytes, "
            f"more than the {MAX_ARRAY_BYTES:,} bytes an array may take; upload "
            "fewer rows or a smaller dtype",
            field=field,
            value=list(shape),
        )
    if declared > available:
        raise InputError(
            f"{where} could not be read as .npy: its header declares shape {shape} "
            f"of dtype {dtype}, {declared:,} bytes, but only {max(available, 0):,} "
            "bytes of data follow; the file is truncated, save it again with "
            "numpy.save or numpy.savez",
            field=field,
            value=list(shape),
        )


def _npz_members(
    archive: zipfile.ZipFile, field: str, filename: str | None
) -> dict[str, str]:
    """Map each array name in an ``.npz`` archive to its member name."""
    members = {
        name.removesuffix(".npy"): name
        for name in archive.namelist()
        if name.endswith(".npy")
    }
    if not members:
        raise InputError(
            f"{upload_name(field, filename)} is a zip archive without .npy arrays; "
            "write .npz files with numpy.savez",
            field=field,
            value=filename,
        )
    return members


def _table_from_array(
    array: np.ndarray, field: str, filename: str | None
) -> pd.DataFrame:
    _require_kind(array, _TABLE_KINDS, _KIND_NAMES, field, filename)
    if array.ndim == 0:
        raise InputError(
            f"{upload_name(field, filename)} contains a single value (a 0-d array); "
            "save a 1-D or 2-D array with one row per example",
            field=field,
            value=filename,
        )
    rows = array.reshape(array.shape[0], -1)
    return pd.DataFrame(rows, columns=[f"f{i}" for i in range(rows.shape[1])])


def _labels_from_array(
    array: np.ndarray, rows: int, field: str, filename: str | None
) -> np.ndarray:
    _require_kind(array, _TABLE_KINDS, _KIND_NAMES, field, filename)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(
            f"{upload_name(field, filename)}: y has shape {array.shape}; "
            "expected one label per row, a 1-D array",
            field=field,
            value=list(array.shape),
        )
    if len(array) != rows:
        raise InputError(
            f"{upload_name(field, filename)}: X has {rows} rows but y has {len(array)} "
            "labels; save one label per row of X",
            field=field,
            value=[rows, len(array)],
        )
    return array


def _require_kind(
    array: np.ndarray, kinds: str, expected: str, field: str, filename: str | None
) -> None:
    if array.dtype.kind not in kinds or array.dtype.names is not None:
        raise InputError(
            f"{upload_name(field, filename)} contains an array of dtype {array.dtype}; "
            f"expected {expected}",
            field=field,
            value=str(array.dtype),
        )
