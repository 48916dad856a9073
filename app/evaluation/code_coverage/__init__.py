"""Code coverage retention: does the subset's test run cover what the original's did?

``read_coverage`` reads a report in Cobertura XML, JaCoCo XML, lcov or coverage.py
JSON, detected from the content, into a ``CoverageReport``. ``coverage_retention``
compares the reports of the run with the original data and the run with the subset.

Lost branch outcomes are listed per file in the notation of the reports' format:

- coverage.py JSON and Cobertura XML: ``12->14`` is the jump from line 12 to line
  14, and ``12->exit`` the one that leaves the function or module.
- lcov: ``12:0:1`` is line 12, block 0, branch 1 of a ``BRDA`` record, with the
  branch part as the tool wrote it (coverage.py writes ``jump to line 14``).
- Formats that count outcomes without naming them (JaCoCo, Cobertura from tools
  other than coverage.py), and two reports in different notations:
  ``12 (1 of 2 branches)`` means that 1 of line 12's 2 outcomes was lost.
"""

from app.evaluation.code_coverage.model import CoverageReport, FileCoverage
from app.evaluation.code_coverage.reader import read_coverage
from app.evaluation.code_coverage.retention import coverage_retention

__all__ = ["CoverageReport", "FileCoverage", "coverage_retention", "read_coverage"]
