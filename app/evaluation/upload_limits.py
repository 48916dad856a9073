"""Size checks that run on an upload's bytes or header before a parser allocates.

Parsers such as pandas' CSV reader and expat keep a whole line, field or tag in
memory until it ends, so one line of a gigabyte costs gigabytes. A Parquet
footer declares the row count before any row is read. These checks reject
such files with a message that names the limit.
"""

from __future__ import annotations

from typing import IO

import pyarrow.parquet as pq

from app.errors import PayloadTooLargeError

# NOTE: the limits are estimates of what a gate needs, not measured maxima: a
# table of 250 million float64 cells takes 2 GB in pandas, and 16 MiB fits a
# CSV row of a million short fields.
MAX_LINE_BYTES = 16 * 1024**2
MAX_TABLE_CELLS = 250_000_000

_CHUNK_BYTES = 1 << 20


class RunTooLongError(Exception):
    """More than the allowed number of bytes passed without the delimiter."""

    def __init__(self, offset: int, limit: int):
        super().__init__(f"more than {limit:,} bytes without a delimiter at {offset:,}")
        self.offset = offset
        self.limit = limit


class RunLimitedReader:
    """A binary reader that raises ``RunTooLongError`` on an overlong run.

    A run is the bytes between two ``delimiter`` bytes. Reading stops with the
    error as soon as a run exceeds ``limit``, so a parser fed through this
    reader never buffers more than ``limit`` bytes plus one read of a single
    unterminated line, field or tag.
    """

    def __init__(self, raw: IO[bytes], *, delimiter: bytes, limit: int):
        self._raw = raw
        self._delimiter = delimiter
        self._limit = limit
        self._run = 0
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        first = data.find(self._delimiter)
        if first < 0:
            self._run += len(data)
        else:
            self._check(self._run + first)
            # A run inside one read can only exceed the limit in a longer read.
            if len(data) > self._limit:
                inner = data.split(self._delimiter)[1:-1]
                self._check(max(map(len, inner), default=0))
            self._run = len(data) - data.rfind(self._delimiter) - 1
        self._check(self._run)
        self._offset += len(data)
        return data

    def _check(self, run: int) -> None:
        if run > self._limit:
            raise RunTooLongError(self._offset, self._limit)


def check_line_lengths(handle: IO[bytes], *, source: str, field: str) -> None:
    """Read ``handle`` to its end and reject a line longer than ``MAX_LINE_BYTES``.

    A quoted CSV field may span lines. Each physical line is checked, so such
    a field passes as long as every one of its lines fits.

    Raises:
        PayloadTooLargeError: a line exceeds the limit. ``source`` names the
            upload in the message.
    """
    reader = RunLimitedReader(handle, delimiter=b"\n", limit=MAX_LINE_BYTES)
    try:
        while reader.read(_CHUNK_BYTES):
            pass
    except RunTooLongError as exc:
        raise PayloadTooLargeError(
            f"{source} has a line longer than {MAX_LINE_BYTES:,} bytes (near byte "
            f"{exc.offset:,}); a text table needs one row per line, so check "
            "that the file uses newlines between rows, or upload it as Parquet",
            field=field,
            value=exc.offset,
        ) from None


def check_parquet_footer(handle: IO[bytes], *, source: str, field: str) -> None:
    """Reject a Parquet file whose footer declares more than ``MAX_TABLE_CELLS``.

    Only the footer is read. pyarrow raises ``ArrowException`` on a corrupt one.

    Raises:
        PayloadTooLargeError: the declared rows times columns exceed the limit.
    """
    metadata = pq.ParquetFile(handle).metadata
    cells = metadata.num_rows * max(metadata.num_columns, 1)
    if metadata.num_rows < 0 or cells > MAX_TABLE_CELLS:
        raise PayloadTooLargeError(
            f"{source} declares {metadata.num_rows:,} rows of "
            f"{metadata.num_columns:,} columns in its Parquet footer, more than "
            f"the {MAX_TABLE_CELLS:,} cells a table may have; upload fewer rows",
            field=field,
            value=metadata.num_rows,
        )
