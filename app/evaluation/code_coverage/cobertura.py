"""Cobertura XML, as written by coverage.py, Cobertura, coverlet, gcovr and others.

Each ``<class filename="...">`` lists its executable ``<line number hits>``
elements, possibly twice (under ``<methods>`` and under ``<lines>``); records of
the same file are merged. A branch line carries ``branch="true"`` and
``condition-coverage="50% (1/2)"``: 2 outcomes, 1 taken. coverage.py also writes
``missing-branches="14,exit"``, the targets of the outcomes not taken, which name
them; results list them as ``12->14`` and ``12->exit``. A branch line without
``condition-coverage`` is counted in ``uncounted_branch_lines`` and adds no branch
data. File names are made relative to the longest matching ``<source>`` root.
The report's own ``line-rate`` and ``branch-rate`` attributes are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import Element

from app.evaluation.code_coverage.builder import FileBuilder, ReportBuilder, natural
from app.evaluation.code_coverage.model import CoverageReport
from app.evaluation.code_coverage.xml_stream import iter_elements

_CONDITIONS = re.compile(r"\((\d+)/(\d+)\)")


def read_cobertura(path: Path, *, field: str, source: str) -> CoverageReport:
    """Parse a Cobertura XML report.

    Raises:
        InputError: the XML is malformed or unsafe, a ``<class>`` has no
            ``filename``, a line number or count is not a whole number, or the
            report has no line data.
    """
    report = ReportBuilder(
        format="cobertura", notation="arc", field=field, source=source
    )
    current: FileBuilder | None = None
    name = ""
    for event, element in iter_elements(path, field=field, source=source):
        tag = element.tag
        if event == "start" and tag == "class":
            name = _class_filename(element, report)
            current = FileBuilder()
        elif event == "start" and tag == "line" and current is not None:
            _add_line(element, current, report)
        elif event == "end" and tag == "class" and current is not None:
            report.add(name, current)
            current = None
        elif event == "end" and tag == "source":
            report.add_root(element.text or "")
    return report.build()


def _class_filename(element: Element, report: ReportBuilder) -> str:
    filename = element.get("filename")
    if not filename:
        raise report.error(
            f"has a <class name={element.get('name', '')!r}> element without a "
            "filename attribute; every class must name its source file",
            value=element.get("name"),
        )
    return filename


def _add_line(element: Element, current: FileBuilder, report: ReportBuilder) -> None:
    raw_number = element.get("number")
    number = natural(raw_number)
    hits = natural(element.get("hits"), None)
    if number is None or hits is None:
        number = report.parse_count(raw_number, "<line> number")
        attribute = f"<line number={raw_number!r}> hits"
        hits = report.parse_count(element.get("hits"), attribute, maximum=None)
    current.add_line(number, hits)
    if element.get("branch", "false").lower() != "true":
        return
    where = f"<line number={raw_number!r}>"
    match = _CONDITIONS.search(element.get("condition-coverage", ""))
    if match is None:
        report.uncounted_branch_lines += 1
        return
    taken = report.parse_count(match.group(1), f"{where} covered conditions")
    total = report.parse_count(match.group(2), f"{where} conditions")
    if total == 0 or taken > total:
        raise report.error(
            f"has {where} condition-coverage {element.get('condition-coverage')!r}, "
            "expected 'P% (taken/total)' with 0 <= taken <= total and total >= 1",
            value=element.get("condition-coverage"),
        )
    current.add_counted(number, total, taken, _missing_targets(element))


def _missing_targets(element: Element) -> list[str] | None:
    raw = element.get("missing-branches")
    if raw is None:
        return None
    return [target.strip() for target in raw.split(",") if target.strip()]
