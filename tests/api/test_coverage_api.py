"""Code-coverage retention through the data gate endpoint."""

import httpx
import pytest

from tests.api.helpers import checks_by_name, only_error, post_files

pytestmark = pytest.mark.slow


def lcov(path, covered, measured=range(1, 21)):
    lines = ["TN:", "SF:src/shop/payments.py"]
    lines += [f"DA:{n},{1 if n in covered else 0}" for n in measured]
    lines += ["end_of_record", ""]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def reports(tmp_path):
    return {
        "original_coverage": lcov(tmp_path / "full.info", set(range(1, 21))),
        "subset_coverage": lcov(tmp_path / "subset.info", set(range(1, 17))),
    }


def test_coverage_reports_alone_gate_retention(server, reports):
    response = post_files(server.url, "data", reports, project="coverage")
    result = response.json()
    line = checks_by_name(result)["line_coverage_retention"]
    lost = result["details"]["code_coverage"]["lost_lines"]
    assert response.status_code == 200, response.text
    assert result["status"] == "failed"
    assert line["value"] == pytest.approx(16 / 20)
    assert lost == {"src/shop/payments.py": [17, 18, 19, 20]}


def test_coverage_reports_join_dataset_checks(server, artifacts, reports, tmp_path):
    reports["subset_coverage"] = lcov(tmp_path / "same.info", set(range(1, 21)))
    files = {
        "original": artifacts["original_csv"],
        "subset": artifacts["subset_good_csv"],
        **reports,
    }
    response = post_files(
        server.url, "data", files, scenario_columns="ink,width", label_column="label"
    )
    checks = checks_by_name(response.json())
    assert response.status_code == 200, response.text
    assert checks["line_coverage_retention"]["value"] == 1.0
    assert checks["scenario_coverage"]["status"] == "passed"


def test_half_a_coverage_pair_is_rejected(server, reports):
    del reports["subset_coverage"]
    response = post_files(server.url, "data", reports)
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "subset_coverage"]


def test_unreadable_coverage_report_is_rejected(server, reports, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<!DOCTYPE x [<!ENTITY a 'boom'>]><coverage>&a;</coverage>")
    reports["subset_coverage"] = bad
    response = post_files(server.url, "data", reports)
    assert response.status_code in (415, 422)
    assert only_error(response)["loc"] == ["body", "subset_coverage"]


def test_data_gate_without_any_pair_names_both_options(server):
    response = httpx.post(
        f"{server.url}/api/v1/gates/data", data={"project": "x"}, files={}
    )
    assert response.status_code == 422
    assert "original_coverage and subset_coverage" in response.text
