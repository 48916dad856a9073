"""JUnit XML, Markdown reports and badges of stored results."""

import xml.etree.ElementTree as ET

import httpx
import pytest

from tests.api.helpers import post_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def failed_data_gate(server, artifacts):
    files = {
        "original": artifacts["original_csv"],
        "subset": artifacts["subset_bad_csv"],
    }
    response = post_files(
        server.url,
        "data",
        files,
        project="reports",
        branch="main",
        scenario_columns="ink,width",
        label_column="label",
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_junit_has_testcase_per_check(server, failed_data_gate):
    response = httpx.get(
        f"{server.url}/api/v1/gates/{failed_data_gate['id']}/junit.xml"
    )
    suite = ET.fromstring(response.content)
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert response.headers["content-type"].startswith("application/xml")
    assert set(cases) == {check["name"] for check in failed_data_gate["checks"]}
    assert suite.get("failures") == str(
        sum(check["status"] == "failed" for check in failed_data_gate["checks"])
    )


def test_junit_failure_carries_message_and_values(server, failed_data_gate):
    response = httpx.get(
        f"{server.url}/api/v1/gates/{failed_data_gate['id']}/junit.xml"
    )
    suite = ET.fromstring(response.content)
    case = next(
        c for c in suite.iter("testcase") if c.get("name") == "scenario_coverage"
    )
    failure = case.find("failure")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    check = next(
        c for c in failed_data_gate["checks"] if c["name"] == "scenario_coverage"
    )
    assert failure is not None
    assert failure.get("message") == check["message"]
    assert float(properties["value"]) == pytest.approx(check["value"])
    assert float(properties["threshold"]) == 0.95


def test_markdown_report_lists_checks_and_lost_scenarios(server, failed_data_gate):
    response = httpx.get(
        f"{server.url}/api/v1/gates/{failed_data_gate['id']}/report.md"
    )
    text = response.text
    assert response.headers["content-type"].startswith("text/markdown")
    assert text.startswith("## DistilGate data gate: FAILED")
    assert "| scenario\\_coverage | failed |" in text
    assert "Scenarios the subset lost" in text
    assert "label=3" in text


def test_markdown_report_is_cut_with_note(server, failed_data_gate):
    response = httpx.get(
        f"{server.url}/api/v1/gates/{failed_data_gate['id']}/report.md",
        params={"max_bytes": 1024},
    )
    assert len(response.content) <= 1024
    assert "Report truncated" in response.text
    assert f"/api/v1/gates/{failed_data_gate['id']}" in response.text


def test_badge_shows_latest_verdict(server, failed_data_gate):
    response = httpx.get(
        f"{server.url}/api/v1/projects/reports/badge.svg",
        params={"branch": "main", "kind": "data"},
    )
    svg = ET.fromstring(response.content)
    texts = [node.text for node in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert texts == ["distilgate data", "failed"]


def test_badge_of_unknown_project_reads_unknown(server):
    response = httpx.get(f"{server.url}/api/v1/projects/nothing-here/badge.svg")
    assert response.status_code == 200
    assert ">unknown<" in response.text


def test_report_of_unknown_gate_is_404(server):
    for suffix in ("junit.xml", "report.md"):
        response = httpx.get(f"{server.url}/api/v1/gates/missing/{suffix}")
        assert response.status_code == 404
        assert response.json()["detail"][0]["msg"] == "gate 'missing' not found"
