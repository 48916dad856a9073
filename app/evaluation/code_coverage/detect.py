"""Recognising a coverage report's format from its content, never from its name.

- XML whose root element is ``<coverage>`` is Cobertura, and ``<report>`` is JaCoCo.
  The root is found by the same safe parser that reads the report.
- Text starting with ``{`` is coverage.py JSON; the reader confirms its keys.
- Text whose first record, past blank lines and ``#`` comments, is ``TN:`` or ``SF:``
  is an lcov tracefile.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import InputError, UnsupportedFormatError
from app.evaluation.code_coverage.model import FORMAT_NAMES, CoverageFormat
from app.evaluation.code_coverage.xml_stream import root_tag

SUPPORTED = ", ".join(FORMAT_NAMES.values())

_HEAD_BYTES = 65536
_XML_ROOTS: dict[str, CoverageFormat] = {"coverage": "cobertura", "report": "jacoco"}
_LCOV_FIRST_RECORDS = ("TN", "SF")


def detect_format(path: Path, *, field: str, source: str) -> CoverageFormat:
    """Return the format of the report at ``path``; ``source`` names it in errors.

    Raises:
        InputError: the file is empty, or is XML that is malformed or unsafe.
        UnsupportedFormatError: the content matches none of the supported formats.
    """
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not head:
        raise InputError(
            f"{source} is empty (0 bytes); upload the coverage report of the run, "
            f"in one of: {SUPPORTED}",
            field=field,
            value=0,
        )
    if head.startswith(b"\x1f\x8b"):
        raise _unsupported(source, field, "is gzip-compressed", "decompress it first")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        return _xml_format(path, field, source)
    if text.startswith(b"{"):
        return "coverage.py json"
    if _first_record(text) in _LCOV_FIRST_RECORDS:
        return "lcov"
    preview = text[:40].decode("utf-8", errors="replace")
    raise _unsupported(
        source, field, f"starts with {preview!r}", "upload the report file itself"
    )


def _xml_format(path: Path, field: str, source: str) -> CoverageFormat:
    tag = root_tag(path, field=field, source=source)
    fmt = _XML_ROOTS.get(tag)
    if fmt is None:
        raise _unsupported(
            source,
            field,
            f"is XML with root element <{tag}>",
            "expected <coverage> (Cobertura) or <report> (JaCoCo)",
        )
    return fmt


def _first_record(text: bytes) -> str | None:
    for raw in text.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.partition(":")[0]
    return None


def _unsupported(
    source: str, field: str, found: str, hint: str
) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{source} is not a supported coverage report: it {found}; supported formats "
        f"are {SUPPORTED}; {hint}",
        field=field,
        value=found,
    )
