"""coverage.py JSON reports (``coverage json``), with or without branch data.

Each entry of ``files`` gives ``executed_lines`` and ``missing_lines``. With
``coverage run --branch`` it also gives ``executed_branches`` and
``missing_branches`` as ``[from, to]`` arcs. An outcome is named by its target and
listed as ``12->14`` in results. A negative target leaves the function or module
and is named ``exit`` (``12->exit``), as in coverage.py's Cobertura
``missing-branches``. The ``summary`` and ``totals``
objects are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.errors import PayloadTooLargeError, UnsupportedFormatError
from app.evaluation.code_coverage.builder import MAX_COUNT, FileBuilder, ReportBuilder
from app.evaluation.code_coverage.model import CoverageReport

EXPECTED_KEYS = ("meta", "files")
# NOTE: an estimated cap, not a measured one. json.load keeps several times
# the file size in memory as Python objects.
MAX_JSON_BYTES = 256 * 1024**2


def read_coveragepy_json(path: Path, *, field: str, source: str) -> CoverageReport:
    """Parse a coverage.py JSON report.

    Raises:
        InputError: the file is not valid JSON, a line list or arc is malformed,
            or the report has no line data.
        UnsupportedFormatError: the JSON is not a coverage.py report.
    """
    report = ReportBuilder(
        format="coverage.py json", notation="arc", field=field, source=source
    )
    data = _load(path, report)
    if not _is_coveragepy(data):
        keys = sorted(data)[:10] if isinstance(data, dict) else type(data).__name__
        raise UnsupportedFormatError(
            f"{source} is JSON but not a coverage.py JSON report: expected an object "
            f'with "meta" and "files" objects, got {keys}; write the report with '
            "`coverage json`",
            field=field,
            value=keys,
        )
    for name, entry in data["files"].items():
        report.add(name, _read_file(name, entry, report))
    return report.build()


def _load(path: Path, report: ReportBuilder) -> Any:
    # json.load cannot stream, so the file size is capped. The XML and lcov
    # readers stream instead.
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise PayloadTooLargeError(
            f"{report.source} is a {size:,}-byte JSON report, larger than the "
            f"{MAX_JSON_BYTES:,} bytes read as JSON; upload the run's lcov "
            "(`coverage lcov`) or Cobertura XML (`coverage xml`) report instead",
            field=report.field,
            value=size,
        )
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, RecursionError) as exc:
        raise report.error(
            f"is not valid JSON ({str(exc)[:200]}); upload the file `coverage json` "
            "wrote",
            value=str(exc)[:200],
        ) from None


def _is_coveragepy(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(data.get(key), dict) for key in EXPECTED_KEYS
    )


def _read_file(name: str, entry: Any, report: ReportBuilder) -> FileBuilder:
    where = f'files["{name}"]'
    if not isinstance(entry, dict):
        raise report.error(
            f"has {where} of type {type(entry).__name__}, expected an object"
        )
    builder = FileBuilder()
    for number in _line_numbers(entry, "executed_lines", where, report):
        builder.add_line(number, 1)
    for number in _line_numbers(entry, "missing_lines", where, report):
        builder.add_line(number, 0)
    for key, taken in (("executed_branches", True), ("missing_branches", False)):
        for start, end in _arcs(entry, key, where, report):
            target = str(end) if end > 0 else "exit"
            builder.add_named(start, target, taken)
    return builder


def _line_numbers(
    entry: dict[str, Any], key: str, where: str, report: ReportBuilder
) -> list[int]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(_is_line(item) for item in value):
        raise report.error(
            f"has {where}.{key} = {str(value)[:100]}, expected a list of line "
            f"numbers from 0 to {MAX_COUNT}; write the report with `coverage json`",
            value=str(value)[:100],
        )
    return value


def _arcs(
    entry: dict[str, Any], key: str, where: str, report: ReportBuilder
) -> list[tuple[int, int]]:
    value = entry.get(key, [])
    arcs = []
    for item in value if isinstance(value, list) else [value]:
        valid = (
            isinstance(item, list)
            and len(item) == 2
            and _is_line(item[0])
            and _is_integer(item[1])
        )
        if not valid:
            raise report.error(
                f"has {where}.{key} containing {str(item)[:100]}, expected "
                "[from line, to line] pairs; write the report with `coverage json`",
                value=str(item)[:100],
            )
        arcs.append((item[0], item[1]))
    return arcs


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_line(value: Any) -> bool:
    return _is_integer(value) and 0 <= value <= MAX_COUNT
