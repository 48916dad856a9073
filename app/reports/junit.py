"""A gate result as JUnit XML, one test case per check.

CI systems (Jenkins' ``junit`` step, GitHub test reporters) show failed checks
as failed tests. Measured values are test case properties. The XML is built
with ElementTree, which escapes every value taken from an upload.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.schemas import CheckOut, GateResult

_FAILING = {"failed"}


def render_junit(result: GateResult) -> bytes:
    """Return the JUnit XML document of ``result``."""
    suite = ET.Element(
        "testsuite",
        name=f"distilgate.{result.kind}",
        tests=str(max(len(result.checks), 1)),
        failures=str(sum(c.status in _FAILING for c in result.checks)),
        errors="1" if result.status == "error" else "0",
        skipped=str(sum(c.status == "skipped" for c in result.checks)),
        timestamp=result.created_at.isoformat(),
    )
    _suite_properties(suite, result)
    classname = f"distilgate.{result.kind}.{result.project}"
    if result.status == "error":
        case = ET.SubElement(suite, "testcase", name="evaluation", classname=classname)
        ET.SubElement(case, "error", message=result.error or "evaluation failed")
    for check in result.checks:
        _testcase(suite, classname, check)
    ET.indent(suite)
    document: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return document


def _suite_properties(suite: ET.Element, result: GateResult) -> None:
    properties = ET.SubElement(suite, "properties")
    values = {
        "gate_id": result.id,
        "status": result.status,
        "project": result.project,
        "branch": result.branch or "",
        "commit": result.commit or "",
    }
    if result.waiver is not None:
        values["waiver"] = (
            f"{result.waiver.reason} (until {result.waiver.expires_at.isoformat()})"
        )
    for name, value in values.items():
        ET.SubElement(properties, "property", name=name, value=value)


def _testcase(suite: ET.Element, classname: str, check: CheckOut) -> None:
    case = ET.SubElement(suite, "testcase", name=check.name, classname=classname)
    properties = ET.SubElement(case, "properties")
    for name, value in (
        ("value", check.value),
        ("threshold", check.threshold),
        ("comparator", check.comparator),
        ("unit", check.unit),
        ("status", check.status),
        ("advisory", check.advisory),
        ("interval", check.interval),
    ):
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=str(value))
    if check.status in _FAILING:
        failure = ET.SubElement(case, "failure", message=check.message)
        failure.text = check.message
    elif check.status == "skipped":
        ET.SubElement(case, "skipped", message=check.message)
    else:
        ET.SubElement(case, "system-out").text = check.message
