"""JaCoCo XML reports.

Line data comes only from ``<sourcefile name>`` elements, whose
``<line nr mi ci mb cb>`` children give the missed and covered instructions and
branches of one source line (each attribute defaults to 0, as in JaCoCo's DTD).
A line is covered when ``ci > 0``, and measured when ``mi + ci > 0``. Branch
outcomes are counted, never named: ``mb + cb`` outcomes, ``cb`` taken. The
``<counter>`` elements repeated at method, class, package, group and report level
are ignored, so nothing is counted twice. A file is named
``<package name>/<sourcefile name>``, for example ``org/shop/Payment.java``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn
from xml.etree.ElementTree import Element

from app.evaluation.code_coverage.builder import (
    MAX_COUNT,
    FileBuilder,
    ReportBuilder,
    natural,
)
from app.evaluation.code_coverage.model import CoverageReport
from app.evaluation.code_coverage.xml_stream import iter_elements

# Branch counts are bounded so that their sum still fits a uint32.
_BRANCH_LIMIT = MAX_COUNT // 2


def read_jacoco(path: Path, *, field: str, source: str) -> CoverageReport:
    """Parse a JaCoCo XML report.

    Raises:
        InputError: the XML is malformed or unsafe, a ``<sourcefile>`` has no
            ``name``, a line attribute is not a whole number, or the report has no
            line data.
    """
    report = ReportBuilder(
        format="jacoco", notation="count", field=field, source=source
    )
    package = ""
    current: FileBuilder | None = None
    name = ""
    for event, element in iter_elements(path, field=field, source=source):
        tag = element.tag
        if event == "start" and tag == "package":
            package = element.get("name", "")
        elif event == "start" and tag == "sourcefile":
            name = _source_path(package, element, report)
            current = FileBuilder()
        elif event == "start" and tag == "line" and current is not None:
            _add_line(element, current, report)
        elif event == "end" and tag == "sourcefile" and current is not None:
            report.add(name, current)
            current = None
        elif event == "end" and tag == "package":
            package = ""
    return report.build()


def _source_path(package: str, element: Element, report: ReportBuilder) -> str:
    filename = element.get("name")
    if not filename:
        raise report.error(
            f"has a <sourcefile> element without a name attribute in package "
            f"{package!r}; every sourcefile must name its file",
            value=package,
        )
    return f"{package}/{filename}" if package else filename


def _add_line(element: Element, current: FileBuilder, report: ReportBuilder) -> None:
    get = element.get
    number = natural(get("nr"))
    missed, covered = natural(get("mi", "0"), None), natural(get("ci", "0"), None)
    missed_branches = natural(get("mb", "0"), _BRANCH_LIMIT)
    covered_branches = natural(get("cb", "0"), _BRANCH_LIMIT)
    if (
        number is None
        or missed is None
        or covered is None
        or missed_branches is None
        or covered_branches is None
    ):
        _raise_invalid_line(element, report)
    if missed + covered > 0:
        current.add_line(number, covered)
    if missed_branches + covered_branches > 0:
        current.add_counted(
            number, missed_branches + covered_branches, covered_branches
        )


def _raise_invalid_line(element: Element, report: ReportBuilder) -> NoReturn:
    """Raise the InputError for the first invalid attribute of a ``<line>``."""
    raw_number = element.get("nr")
    report.parse_count(raw_number, "<line> nr")
    for key in ("mi", "ci", "mb", "cb"):
        limit = None if key in ("mi", "ci") else _BRANCH_LIMIT
        attribute = f"<line nr={raw_number!r}> {key}"
        report.parse_count(element.get(key, "0"), attribute, maximum=limit)
    raise AssertionError("parse_count accepted a <line> attribute natural() rejected")
