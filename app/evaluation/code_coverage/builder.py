"""Collecting a report while a parser streams through it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.errors import InputError
from app.evaluation.code_coverage.model import (
    FORMAT_NAMES,
    BranchNotation,
    Columns,
    ColumnsBuilder,
    CoverageFormat,
    CoverageReport,
    FileCoverage,
    LineBranches,
    counted,
    merge_branches,
    merge_files,
    named,
)
from app.evaluation.code_coverage.paths import normalise_path, strip_roots

# Line numbers and branch counts are stored as uint32.
MAX_COUNT = 2**32 - 1


def natural(text: str | None, maximum: int | None = MAX_COUNT) -> int | None:
    """Return ``text`` as an integer from 0 to ``maximum``, or None if it is not one.

    Surrounding whitespace is allowed; signs, fractions and exponents are not.
    """
    if text is None:
        return None
    if not text.isdecimal():
        text = text.strip()
        if not text.isdecimal():
            return None
    try:
        value = int(text)
    except ValueError:  # more digits than int() converts
        return None
    return value if maximum is None or value <= maximum else None


class FileBuilder:
    """The lines and branches of one file record, in the order a parser meets them."""

    def __init__(self) -> None:
        self.covered: list[int] = []
        self.uncovered: list[int] = []
        self.counted: dict[int, LineBranches] = {}
        self.taken_names: dict[int, set[str]] = {}
        self.missed_names: dict[int, set[str]] = {}

    def add_line(self, number: int, hits: int) -> None:
        """Record one executable line and how often the run executed it."""
        (self.covered if hits > 0 else self.uncovered).append(number)

    def add_counted(
        self, line: int, total: int, taken: int, missed: Iterable[str] | None = None
    ) -> None:
        """Record a line's branch outcomes as counts, with missed names if known."""
        outcomes = counted(total, taken, missed)
        known = self.counted.get(line)
        self.counted[line] = (
            outcomes if known is None else merge_branches(known, outcomes)
        )

    def add_named(self, line: int, name: str, taken: bool) -> None:
        """Record one named branch outcome of a line."""
        self.taken_names.setdefault(line, set())
        self.missed_names.setdefault(line, set())
        (self.taken_names if taken else self.missed_names)[line].add(name)

    def branches(self) -> dict[int, LineBranches]:
        """Return the outcomes of every branch line recorded so far."""
        result = dict(self.counted)
        for line, taken in self.taken_names.items():
            outcomes = named(taken, self.missed_names[line])
            known = result.get(line)
            result[line] = (
                outcomes if known is None else merge_branches(known, outcomes)
            )
        return result


class ReportBuilder:
    """The file records of one report, stored in columns as they arrive.

    ``build`` merges the records of files that appear more than once, which happens
    in lcov tracefiles and when two names normalise to the same file.
    """

    def __init__(
        self,
        *,
        format: CoverageFormat,
        notation: BranchNotation,
        field: str,
        source: str,
    ) -> None:
        self.format: CoverageFormat = format
        self.notation: BranchNotation = notation
        self.field = field
        self.source = source
        self.records = ColumnsBuilder()
        self.record_names: list[str] = []
        self.roots: list[str] = []
        self.uncounted_branch_lines = 0

    def add(self, raw_path: str, record: FileBuilder) -> None:
        """Add one file record under its normalised name."""
        name = normalise_path(raw_path)
        if not name:
            raise self.error(
                f"has a file record without a file name ({raw_path!r}); every record "
                "must name its source file",
                value=raw_path,
            )
        self.record_names.append(name)
        self.records.append(record.covered, record.uncovered, record.branches())

    def add_root(self, raw_path: str) -> None:
        """Add a source root whose prefix is removed from file names."""
        root = normalise_path(raw_path)
        if root:
            self.roots.append(root)

    def build(self) -> CoverageReport:
        """Return the report, with source roots removed from the file names.

        Raises:
            InputError: no file in the report has an executable line.
        """
        names = [strip_roots(name, self.roots) for name in self.record_names]
        columns = self.records.freeze()
        if len(set(names)) != len(names):
            names, columns = _merge_repeated(names, columns)
        if len(columns.covered) + len(columns.uncovered) == 0:
            raise self.error(
                "contains no line coverage data; upload the report of a test run "
                "that measured at least one source file"
            )
        return CoverageReport(
            format=self.format,
            branch_notation=self.notation,
            names=tuple(names),
            columns=columns,
            uncounted_branch_lines=self.uncounted_branch_lines,
        )

    def error(self, problem: str, value: Any = None) -> InputError:
        """Return an InputError whose message starts with the upload and its format."""
        return InputError(
            f"{self.source} ({FORMAT_NAMES[self.format]}) {problem}",
            field=self.field,
            value=value,
        )

    def parse_count(
        self, text: str | None, what: str, *, maximum: int | None = MAX_COUNT
    ) -> int:
        """Parse a non-negative integer attribute or field, named ``what`` in errors.

        ``maximum`` bounds line numbers and branch counts, which are stored as
        uint32. Hit counts pass ``None``: only their sign matters.

        Raises:
            InputError: ``text`` is missing, not an integer, negative or too large.
        """
        value = natural(text, maximum)
        if value is not None:
            return value
        if maximum is None:
            expected = "a whole number of at least 0"
        else:
            expected = f"a whole number from 0 to {maximum}"
        if text is None:
            problem = f"is missing {what}"
        else:
            problem = f"has an invalid {what}: {text!r}"
        raise self.error(
            f"{problem}, expected {expected}; upload the report as the coverage tool "
            "wrote it",
            value=text,
        )


def _merge_repeated(names: list[str], records: Columns) -> tuple[list[str], Columns]:
    """Merge the records of each file into one, keeping first-seen file order."""
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name, []).append(index)
    merged = ColumnsBuilder()
    for indices in groups.values():
        coverage: FileCoverage = records.segment(indices[0])
        for index in indices[1:]:
            coverage = merge_files(coverage, records.segment(index))
        merged.append(
            coverage.covered_lines.tolist(),
            coverage.uncovered_lines.tolist(),
            coverage.branches,
        )
    return list(groups), merged.freeze()
