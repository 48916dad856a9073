"""Normalised coverage data: the lines and branches one test run covered, per file.

Every parser in this package produces a ``CoverageReport``, so retention is computed
the same way whatever tool wrote the report. A report stores its data in columns
shared by all files (``Columns``): line numbers in flat ``uint32`` arrays with one
end offset per file, and branch outcome names interned in one table. A report of
millions of lines therefore takes a few bytes per line, however many files it has.
``FileCoverage`` is a per-file view built on demand.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

LineNumbers = npt.NDArray[np.uint32]
Offsets = npt.NDArray[np.int64]

CoverageFormat = Literal["cobertura", "jacoco", "lcov", "coverage.py json"]
BranchNotation = Literal["arc", "lcov", "count"]

FORMAT_NAMES: dict[CoverageFormat, str] = {
    "cobertura": "Cobertura XML",
    "jacoco": "JaCoCo XML",
    "lcov": "lcov tracefile",
    "coverage.py json": "coverage.py JSON",
}

_NO_NAMES: frozenset[str] = frozenset()
# Type code of a 4-byte unsigned array item; "I" on all common platforms.
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
# How much of a branch line's outcomes its format names.
_NAMED_NONE, _NAMED_MISSED, _NAMED_ALL = 0, 1, 2


@dataclass(frozen=True)
class LineBranches:
    """The branch outcomes of one line: how many exist and how many the run took.

    ``taken_names`` and ``missed_names`` name the outcomes when the format names
    them (``"14"`` for the jump to line 14, ``"0:1"`` for lcov block 0 branch 1) and
    are ``None`` when it does not. Build instances with ``counted`` or ``named``,
    which keep a name set only when its size agrees with the counts.
    """

    total: int
    taken: int
    taken_names: frozenset[str] | None = None
    missed_names: frozenset[str] | None = None

    def missed(self) -> frozenset[str] | None:
        """Return the names of the outcomes not taken, or None when unknown."""
        if self.missed_names is not None:
            return self.missed_names
        if self.taken == self.total:
            return _NO_NAMES
        return None


def counted(
    total: int, taken: int, missed: Iterable[str] | None = None
) -> LineBranches:
    """Build the outcomes of a line whose format counts them.

    ``missed`` is dropped unless it names exactly ``total - taken`` outcomes.
    """
    missed_names = None if missed is None else frozenset(missed)
    if missed_names is not None and len(missed_names) != total - taken:
        missed_names = None
    return LineBranches(total=total, taken=taken, missed_names=missed_names)


def named(taken: Iterable[str], missed: Iterable[str]) -> LineBranches:
    """Build the outcomes of a line whose format names each one.

    An outcome named in both sets counts as taken, because the records were merged
    from several runs and one of them took it.
    """
    taken_names = frozenset(taken)
    missed_names = frozenset(missed) - taken_names
    return LineBranches(
        total=len(taken_names) + len(missed_names),
        taken=len(taken_names),
        taken_names=taken_names,
        missed_names=missed_names,
    )


def merge_branches(first: LineBranches, second: LineBranches) -> LineBranches:
    """Merge two records of the same line's outcomes.

    Named outcomes are merged as sets. Counted outcomes cannot be matched, so the
    record that took more outcomes is kept.
    """
    if first.taken_names is not None and second.taken_names is not None:
        missed = (first.missed_names or _NO_NAMES) | (second.missed_names or _NO_NAMES)
        return named(first.taken_names | second.taken_names, missed)
    return max(first, second, key=lambda item: (item.taken, item.total))


@dataclass(frozen=True, eq=False)
class FileCoverage:
    """The coverage of one source file in one run.

    ``covered_lines`` and ``uncovered_lines`` are sorted, unique and disjoint.
    """

    covered_lines: LineNumbers
    uncovered_lines: LineNumbers
    branches: Mapping[int, LineBranches]


def merge_files(first: FileCoverage, second: FileCoverage) -> FileCoverage:
    """Merge two records of one file: a line is covered if either record covers it."""
    covered = np.union1d(first.covered_lines, second.covered_lines)
    uncovered = np.setdiff1d(
        np.union1d(first.uncovered_lines, second.uncovered_lines), covered
    )
    branches = dict(first.branches)
    for line, outcomes in second.branches.items():
        known = branches.get(line)
        branches[line] = outcomes if known is None else merge_branches(known, outcomes)
    return FileCoverage(
        covered.astype(np.uint32), uncovered.astype(np.uint32), branches
    )


@dataclass(frozen=True, eq=False)
class Columns:
    """The coverage of many files in flat arrays; file ``i`` is segment ``i``.

    Each group of arrays has an ``*_ends`` array whose item ``i`` is the end of file
    ``i``'s rows. Branch rows are one per branch line. Label rows are one per named
    outcome, and ``label_name`` indexes ``names``.
    """

    covered: LineNumbers
    covered_ends: Offsets
    uncovered: LineNumbers
    uncovered_ends: Offsets
    branch_line: LineNumbers
    branch_total: LineNumbers
    branch_taken: LineNumbers
    branch_named: npt.NDArray[np.uint8]
    branch_ends: Offsets
    label_line: LineNumbers
    label_name: LineNumbers
    label_taken: npt.NDArray[np.uint8]
    label_ends: Offsets
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.covered_ends)

    def segment(self, index: int) -> FileCoverage:
        """Return file ``index`` as a ``FileCoverage``; line arrays are views."""
        covered = _rows(self.covered, self.covered_ends, index)
        uncovered = _rows(self.uncovered, self.uncovered_ends, index)
        return FileCoverage(covered, uncovered, self._branches(index))

    def _branches(self, index: int) -> dict[int, LineBranches]:
        taken: dict[int, set[str]] = {}
        missed: dict[int, set[str]] = {}
        start, end = _bounds(self.label_ends, index)
        rows = zip(
            self.label_line[start:end].tolist(),
            self.label_name[start:end].tolist(),
            self.label_taken[start:end].tolist(),
            strict=True,
        )
        for line, name, was_taken in rows:
            (taken if was_taken else missed).setdefault(line, set()).add(
                self.names[name]
            )
        result = {}
        start, end = _bounds(self.branch_ends, index)
        branch_rows = zip(
            self.branch_line[start:end].tolist(),
            self.branch_total[start:end].tolist(),
            self.branch_taken[start:end].tolist(),
            self.branch_named[start:end].tolist(),
            strict=True,
        )
        for line, total, count, kind in branch_rows:
            all_named = kind == _NAMED_ALL
            result[line] = LineBranches(
                total=total,
                taken=count,
                taken_names=frozenset(taken.get(line, ())) if all_named else None,
                missed_names=frozenset(missed.get(line, ())) if kind else None,
            )
        return result


class ColumnsBuilder:
    """Columns under construction, one file appended at a time."""

    def __init__(self) -> None:
        self.covered, self.uncovered = array(_U32), array(_U32)
        self.branch_line, self.branch_total = array(_U32), array(_U32)
        self.branch_taken, self.branch_named = array(_U32), array("B")
        self.label_line, self.label_name = array(_U32), array(_U32)
        self.label_taken = array("B")
        self.ends = {
            key: array("q") for key in ("covered", "uncovered", "branch", "label")
        }
        self.name_ids: dict[str, int] = {}

    def append(
        self,
        covered: Iterable[int],
        uncovered: Iterable[int],
        branches: Mapping[int, LineBranches],
    ) -> None:
        """Append one file, given line numbers in any order, with repeats.

        A line listed as both covered and uncovered counts as covered.
        """
        covered_set = set(covered)
        self.covered.extend(sorted(covered_set))
        self.uncovered.extend(sorted(set(uncovered) - covered_set))
        for line in sorted(branches):
            self._append_branch(line, branches[line])
        self.ends["covered"].append(len(self.covered))
        self.ends["uncovered"].append(len(self.uncovered))
        self.ends["branch"].append(len(self.branch_line))
        self.ends["label"].append(len(self.label_line))

    def _append_branch(self, line: int, outcomes: LineBranches) -> None:
        kind = _NAMED_NONE
        if outcomes.taken_names is not None:
            kind = _NAMED_ALL
            self._append_labels(line, outcomes.taken_names, taken=True)
        if outcomes.missed_names is not None:
            kind = kind or _NAMED_MISSED
            self._append_labels(line, outcomes.missed_names, taken=False)
        self.branch_line.append(line)
        self.branch_total.append(outcomes.total)
        self.branch_taken.append(outcomes.taken)
        self.branch_named.append(kind)

    def _append_labels(self, line: int, names: Iterable[str], *, taken: bool) -> None:
        for name in sorted(names):
            self.label_line.append(line)
            self.label_name.append(self.name_ids.setdefault(name, len(self.name_ids)))
            self.label_taken.append(taken)

    def freeze(self) -> Columns:
        """Return the columns; the arrays share memory with this builder."""
        return Columns(
            covered=_u32(self.covered),
            covered_ends=_offsets(self.ends["covered"]),
            uncovered=_u32(self.uncovered),
            uncovered_ends=_offsets(self.ends["uncovered"]),
            branch_line=_u32(self.branch_line),
            branch_total=_u32(self.branch_total),
            branch_taken=_u32(self.branch_taken),
            branch_named=np.frombuffer(self.branch_named, dtype=np.uint8),
            branch_ends=_offsets(self.ends["branch"]),
            label_line=_u32(self.label_line),
            label_name=_u32(self.label_name),
            label_taken=np.frombuffer(self.label_taken, dtype=np.uint8),
            label_ends=_offsets(self.ends["label"]),
            names=tuple(self.name_ids),
        )


@dataclass(frozen=True, eq=False)
class CoverageReport:
    """One run's coverage report, normalised; ``names[i]`` is file ``i``.

    ``branch_notation`` is the notation of outcome names (see the package
    documentation). ``uncounted_branch_lines`` counts the lines the report marks as
    branches without giving their number of outcomes, which carry no branch data.
    Totals are recomputed from the line and branch records.
    """

    format: CoverageFormat
    branch_notation: BranchNotation
    names: tuple[str, ...]
    columns: Columns
    uncounted_branch_lines: int = 0

    @cached_property
    def files(self) -> Mapping[str, FileCoverage]:
        """Return the files by normalised name, each built when it is looked up."""
        return _FileViews(self.names, self.columns)

    def lines_covered(self) -> int:
        """Return the number of lines the run executed."""
        return len(self.columns.covered)

    def lines_measured(self) -> int:
        """Return the number of executable lines, covered or not."""
        return len(self.columns.covered) + len(self.columns.uncovered)

    def branches_total(self) -> int:
        """Return the number of branch outcomes the report measured."""
        return int(self.columns.branch_total.sum(dtype=np.int64))

    def branches_taken(self) -> int:
        """Return the number of branch outcomes the run took."""
        return int(self.columns.branch_taken.sum(dtype=np.int64))


class _FileViews(Mapping[str, FileCoverage]):
    def __init__(self, names: tuple[str, ...], columns: Columns) -> None:
        self._index = {name: index for index, name in enumerate(names)}
        self._columns = columns

    def __getitem__(self, name: str) -> FileCoverage:
        return self._columns.segment(self._index[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _bounds(ends: Offsets, index: int) -> tuple[int, int]:
    start = int(ends[index - 1]) if index else 0
    return start, int(ends[index])


def _rows(values: LineNumbers, ends: Offsets, index: int) -> LineNumbers:
    start, end = _bounds(ends, index)
    return values[start:end]


def _u32(values: array[int]) -> LineNumbers:
    return np.frombuffer(values, dtype=np.uint32)


def _offsets(values: array[int]) -> Offsets:
    return np.frombuffer(values, dtype=np.int64)
