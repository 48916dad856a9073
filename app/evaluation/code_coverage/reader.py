"""Reading an uploaded coverage report of any supported format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.evaluation.code_coverage.cobertura import read_cobertura
from app.evaluation.code_coverage.coveragepy_json import read_coveragepy_json
from app.evaluation.code_coverage.detect import detect_format
from app.evaluation.code_coverage.jacoco import read_jacoco
from app.evaluation.code_coverage.lcov import read_lcov
from app.evaluation.code_coverage.model import CoverageFormat, CoverageReport
from app.evaluation.numpy_files import upload_name

Reader = Callable[..., CoverageReport]

READERS: dict[CoverageFormat, Reader] = {
    "cobertura": read_cobertura,
    "jacoco": read_jacoco,
    "lcov": read_lcov,
    "coverage.py json": read_coveragepy_json,
}


def read_coverage(
    path: Path, *, field: str, filename: str | None = None
) -> CoverageReport:
    """Read a coverage report, detecting its format from the content.

    ``field`` and ``filename`` name the upload in error messages only.

    Raises:
        InputError: the file is empty, malformed, unsafe XML, or has no line data.
            The message names ``field``.
        UnsupportedFormatError: the content matches none of Cobertura XML, JaCoCo
            XML, an lcov tracefile or coverage.py JSON.
    """
    source = upload_name(field, filename)
    fmt = detect_format(path, field=field, source=source)
    return READERS[fmt](path, field=field, source=source)
