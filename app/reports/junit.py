"""A gate result as JUnit XML, one test case per check.

CI systems (Jenkins' ``junit`` step, GitHub test reporters) show failed checks
as failed tests. Measured values are test case properties. The XML is built
with ElementTree, which escapes markup in every value taken from an upload.
Characters XML 1.0 cannot contain at all (control characters and lone
surrogates) are written as ``\\xNN`` or ``\\uNNNN`` first, so the document
always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from app.schemas import CheckOut, GateResult

_FAILING = {"failed"}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """Return ``str(value)`` with characters XML 1.0 forbids escaped as text."""
    return _NOT_XML.sub(_escape_character, str(value))


def _escape_character(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
        message = xml_text(result.error or "evaluation failed")
        ET.SubElement(case, "error", message=message)
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
        ET.SubElement(properties, "property", name=name, value=xml_text(value))


def _testcase(suite: ET.Element, classname: str, check: CheckOut) -> None:
    name = xml_text(check.name)
    case = ET.SubElement(suite, "testcase", name=name, classname=classname)
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
            ET.SubElement(properties, "property", name=name, value=xml_text(value))
    message = xml_text(check.message)
    if check.status in _FAILING:
        failure = ET.SubElement(case, "failure", message=message)
        failure.text = message
    elif check.status == "skipped":
        ET.SubElement(case, "skipped", message=message)
    else:
        ET.SubElement(case, "system-out").text = message
