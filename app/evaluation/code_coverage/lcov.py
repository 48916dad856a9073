"""lcov tracefiles (``.info``), as written by geninfo, coverage.py, c8 and others.

The file is read one line at a time. A record starts with ``SF:<path>`` and ends
with ``end_of_record``. The records of a file that appears more than once are
merged, so a line is covered when any record covers it. Only two record types
carry the data used:

- ``DA:<line>,<count>[,<checksum>]``: an executable line and its execution count.
- ``BRDA:<line>,<block>,<branch>,<taken>``: one branch outcome. ``<block>`` may
  carry lcov 2.x flags (``e``, ``f``, ``U``), ``<branch>`` may contain commas, and
  ``<taken>`` is ``-`` when the branch's block never ran, which counts as 0. The
  outcome is named ``<block>:<branch>`` and listed as ``<line>:<block>:<branch>``
  in results, for example ``12:0:1``, or ``12:0:jump to line 14`` from coverage.py.

Every other record type (``TN``, ``VER``, ``FN``, ``FNDA``, ``FNL``, ``FNA``,
``MCDC``, the ``LF``/``LH``/``BRF``/``BRH`` totals, and types added later) is
skipped, as are blank lines and ``#`` comments. A final record without
``end_of_record`` is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from app.errors import PayloadTooLargeError
from app.evaluation.code_coverage.builder import FileBuilder, ReportBuilder, natural
from app.evaluation.code_coverage.model import CoverageReport

# The maximum line length read. A longer line would be held in memory whole.
MAX_LINE_CHARS = 1024**2

# NOTE: coverage.py before 7.6.2 numbered a line's BRDA branches with the missed
# ones first, so one outcome can carry different names in two runs and retention
# of those branches is understated. Compare such runs in coverage.py's JSON or
# Cobertura XML instead, which name each outcome by its target line.


def read_lcov(path: Path, *, field: str, source: str) -> CoverageReport:
    """Parse an lcov tracefile.

    Raises:
        InputError: a ``DA`` or ``BRDA`` record is malformed or comes before any
            ``SF`` record, or the file has no line data.
    """
    report = ReportBuilder(format="lcov", notation="lcov", field=field, source=source)
    current: FileBuilder | None = None
    name = ""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(_lines(handle, report), start=1):
            text = raw.strip()
            key, _, value = text.partition(":")
            # DA records are the most frequent, so they are tested first.
            if key == "DA" and current is not None:
                _add_line(value, number, current, report)
            elif key == "BRDA" and current is not None:
                _add_branch(value, number, current, report)
            elif key == "SF":
                if current is not None:
                    report.add(name, current)
                name, current = value, FileBuilder()
            elif key == "end_of_record" and current is not None:
                report.add(name, current)
                current = None
            elif key in ("DA", "BRDA"):
                raise report.error(
                    f"has a {key} record on line {number} before any SF record; "
                    "each record must start with SF:<source file>",
                    value=text,
                )
    if current is not None:
        report.add(name, current)
    return report.build()


def _lines(handle: TextIO, report: ReportBuilder) -> Iterator[str]:
    """Yield the lines of ``handle``, rejecting one longer than ``MAX_LINE_CHARS``."""
    number = 0
    while line := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise PayloadTooLargeError(
                f"{report.source} has a line longer than {MAX_LINE_CHARS:,} "
                f"characters (line {number}); lcov records are short, so upload "
                "the tracefile as the coverage tool wrote it",
                field=report.field,
                value=number,
            )
        yield line


def _add_line(
    value: str, number: int, current: FileBuilder, report: ReportBuilder
) -> None:
    line_text, _, rest = value.partition(",")
    count_text = rest.partition(",")[0]
    line, count = natural(line_text), natural(count_text, None)
    if line is None or count is None:
        if "," not in value:
            raise _invalid(report, "DA", value, number, "DA:<line>,<count>")
        record = f"the DA record on line {number}"
        line = report.parse_count(line_text, f"line number in {record}")
        count = report.parse_count(
            count_text, f"execution count in {record}", maximum=None
        )
    current.add_line(line, count)


def _add_branch(
    value: str, number: int, current: FileBuilder, report: ReportBuilder
) -> None:
    head, _, taken_text = value.rpartition(",")
    line_text, _, rest = head.partition(",")
    block, separator, branch = rest.partition(",")
    if not separator:
        raise _invalid(
            report, "BRDA", value, number, "BRDA:<line>,<block>,<branch>,<taken>"
        )
    line = report.parse_count(
        line_text, f"line number in the BRDA record on line {number}"
    )
    taken = 0
    if taken_text != "-":
        taken = report.parse_count(
            taken_text, f"taken count in the BRDA record on line {number}", maximum=None
        )
    current.add_named(line, f"{block}:{branch}", taken > 0)


def _invalid(
    report: ReportBuilder, key: str, value: str, number: int, expected: str
) -> Exception:
    return report.error(
        f"has an invalid {key} record on line {number} ({key}:{value}), expected "
        f"{expected}; upload the tracefile as the coverage tool wrote it",
        value=f"{key}:{value}",
    )
