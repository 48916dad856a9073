"""Values from uploads are escaped in every rendering of a result.

Unit tests render hostile results directly. Live tests (SQLite, then
PostgreSQL) upload files whose column names, values and labels carry markup,
then read the reports back. Files served from uploads (a distilled subset, an
artifact fetched by a worker) must be nosniff attachments. There is no CSV
export, so there are no spreadsheet formulas to neutralise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from defusedxml import ElementTree

from app.reports.badge import render_badge
from app.reports.junit import render_junit
from app.reports.markdown import render_markdown
from app.schemas import GateResult
from tests.conftest import BACKENDS
from tests.security.corpus import csv_table, post_gate
from tests.servers import LiveServer, live_server

SCRIPT = "<script>alert(1)</script>|**x**"
CDATA_END = "src/]]><b>bold</b>.py"
CONTROL = "ok\x01\x1b[31mred\x0b"
SURROGATE = "lone\ud800half"
# An angle bracket that no backslash escapes.
RAW_ANGLE = re.compile(r"(?<!\\)[<>]")


def hostile_result(**overrides: Any) -> GateResult:
    fields: dict[str, Any] = {
        "id": "0" * 32,
        "kind": "data",
        "status": "failed",
        "project": "default",
        "branch": CDATA_END,
        "commit": SCRIPT,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "policy": {},
        "metrics": {},
        "checks": [
            {
                "name": SCRIPT,
                "value": 0.5,
                "threshold": 0.95,
                "comparator": ">=",
                "unit": "fraction",
                "status": "failed",
                "advisory": False,
                "message": f"lost {CDATA_END} and {CONTROL} and {SURROGATE}",
            }
        ],
        "artifacts": {},
        "details": {
            "missing_scenarios": [
                {"values": {SCRIPT: CDATA_END}, "original_rows": 3},
            ]
        },
        "error": f"{SCRIPT} {CONTROL}",
    }
    return GateResult.model_validate(fields | overrides)


# JUnit


def test_junit_parses_with_hostile_values() -> None:
    document = render_junit(hostile_result(status="error"))
    root = ElementTree.fromstring(document)
    case = root.find("testcase[@name='evaluation']")
    assert case is not None
    assert root.find("properties/property[@name='branch']").get("value") == CDATA_END
    assert root.find("properties/property[@name='commit']").get("value") == SCRIPT
    failed = root.find("testcase/failure")
    assert failed is not None
    assert CDATA_END in failed.text


def test_junit_escapes_characters_xml_forbids() -> None:
    document = render_junit(hostile_result(status="error"))
    root = ElementTree.fromstring(document)
    message = root.find("testcase/failure").get("message")
    assert "ok\\x01\\x1b[31mred\\x0b" in message
    assert "lone\\ud800half" in message
    error = root.find("testcase[@name='evaluation']/error").get("message")
    assert error == f"{SCRIPT} ok\\x01\\x1b[31mred\\x0b"


def test_junit_has_no_raw_markup() -> None:
    document = render_junit(hostile_result()).decode()
    assert "<script>" not in document
    assert "<b>" not in document
    assert "]]>" not in document


# Markdown


def test_markdown_escapes_markup_and_tables() -> None:
    text = render_markdown(hostile_result())
    assert RAW_ANGLE.search(text) is None
    assert "\\<script\\>alert(1)\\</script\\>\\|\\*\\*x\\*\\*" in text
    assert "src/\\]\\]\\>\\<b\\>bold\\</b\\>.py" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| ")]
    # Every row keeps its three cells: an escaped '|' does not split a cell.
    assert all(line.replace("\\|", "").count("|") == 4 for line in table_rows)


def test_markdown_escapes_control_characters() -> None:
    text = render_markdown(hostile_result())
    assert "\x1b" not in text
    assert "\x01" not in text
    assert "ok\\\\x01\\\\x1b\\[31mred\\\\x0b" in text
    text.encode("utf-8")  # a lone surrogate would raise here


# Badge


def test_badge_escapes_label() -> None:
    svg = render_badge('"><script>x</script>', "failed")
    assert "<script>" not in svg
    assert "&quot;&gt;&lt;script&gt;" in svg
    ElementTree.fromstring(svg)


# Live server


@pytest.mark.slow
def test_hostile_column_escaped_in_live_reports(server) -> None:
    values = ["]]>", "<img src=x onerror=alert(1)>", "plain", "\x1b[31mred"]
    rows = [[values[i % 4], i % 3, i] for i in range(80)]
    subset_rows = [row for row in rows if row[0] in ("plain", "\x1b[31mred")]
    files = {
        "original": ("o.csv", csv_table([SCRIPT, "b", "c"], rows)),
        "subset": ("s.csv", csv_table([SCRIPT, "b", "c"], subset_rows)),
    }
    response = post_gate(
        server.url, "data", files, scenario_columns=SCRIPT, branch=CDATA_END
    )
    result = response.json()
    assert response.status_code == 200, result
    assert result["status"] == "failed"
    lost = [entry["values"] for entry in result["details"]["missing_scenarios"]]
    assert {SCRIPT: "]]>"} in lost

    base = f"{server.url}/api/v1/gates/{result['id']}"
    markdown = httpx.get(f"{base}/report.md")
    assert markdown.headers["x-content-type-options"] == "nosniff"
    assert RAW_ANGLE.search(markdown.text) is None
    lost_line = "\\<script\\>alert(1)\\</script\\>\\|\\*\\*x\\*\\*=\\]\\]\\>"
    assert lost_line in markdown.text
    assert "branch `src/\\]\\]\\>\\<b\\>bold\\</b\\>.py`" in markdown.text

    junit = httpx.get(f"{base}/junit.xml")
    assert junit.headers["x-content-type-options"] == "nosniff"
    assert junit.headers["content-disposition"] == (
        f'attachment; filename="{result["id"]}.junit.xml"'
    )
    root = ElementTree.fromstring(junit.content)
    assert root.find("properties/property[@name='branch']").get("value") == CDATA_END
    assert "<b>" not in junit.text


# Downloads of uploaded or derived files

INTERNAL_TOKEN = "internal-" + "t" * 32


@pytest.fixture(scope="module", params=BACKENDS)
def worker_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live server with the internal artifact route enabled."""
    root = tmp_path_factory.mktemp(f"downloads-{request.param}")
    env = {"DISTILGATE_INTERNAL_TOKEN": INTERNAL_TOKEN}
    with live_server(request.param, root, env) as live:
        yield live


@pytest.mark.slow
def test_downloads_are_nosniff_attachments(worker_server: LiveServer) -> None:
    rows = [[i % 5, (i * 7) % 11, i % 2] for i in range(200)]
    hostile_name = 'x"\r\nX-Injected: 1<script>.csv'
    response = httpx.post(
        f"{worker_server.url}/api/v1/distill",
        files={"original": (hostile_name, csv_table(["a", "b", "label"], rows))},
        data={"fraction": "0.3"},
        timeout=120.0,
    )
    result = response.json()
    assert response.status_code == 200, result

    subset = httpx.get(f"{worker_server.url}/api/v1/distill/{result['id']}/subset")
    assert subset.status_code == 200
    assert subset.headers["x-content-type-options"] == "nosniff"
    disposition = subset.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "x-injected" not in subset.headers
    assert "<" not in disposition
    assert "\r" not in disposition

    sha256 = result["artifacts"]["original"]["sha256"]
    artifact = httpx.get(
        f"{worker_server.url}/api/v1/internal/artifacts/{sha256}",
        headers={"authorization": f"Bearer {INTERNAL_TOKEN}"},
    )
    assert artifact.status_code == 200
    assert artifact.headers["x-content-type-options"] == "nosniff"
    assert artifact.headers["content-disposition"] == (
        f'attachment; filename="{sha256}"'
    )
    assert hashlib.sha256(artifact.content).hexdigest() == sha256
