"""Project policies as code, and waivers."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.slow


def post_data_metrics(server, project, coverage, policy=None):
    body = {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": coverage},
    }
    if policy is not None:
        body["policy"] = policy
    return httpx.post(f"{server.url}/api/v1/gates/metrics", json=body)


def put_policy(server, project, body):
    return httpx.put(f"{server.url}/api/v1/projects/{project}/policy", json=body)


def test_policy_schema_is_published(server):
    schema = httpx.get(f"{server.url}/api/v1/policy/schema").json()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["min_coverage"]["maximum"] == 1.0


def test_project_policy_versions_and_applies(server):
    first = put_policy(server, "shop", {"policy": {"min_coverage": 0.8}})
    second = put_policy(server, "shop", {"policy": {"min_coverage": 0.85}})
    gate = post_data_metrics(server, "shop", 0.86).json()
    assert first.json()["version"] == 1
    assert second.json()["version"] == 2
    assert second.json()["effective"]["min_coverage"] == 0.85
    assert gate["status"] == "passed"
    assert gate["policy"]["min_coverage"] == 0.85
    assert gate["policy_version"] == 2


def test_request_policy_overrides_project_policy(server):
    put_policy(server, "override", {"policy": {"min_coverage": 0.8}})
    gate = post_data_metrics(server, "override", 0.86, {"min_coverage": 0.9}).json()
    assert gate["policy"]["min_coverage"] == 0.9
    assert gate["status"] == "failed"


def test_locked_key_cannot_be_overridden(server):
    put_policy(
        server, "locked", {"policy": {"min_coverage": 0.97}, "locked": ["min_coverage"]}
    )
    response = post_data_metrics(server, "locked", 0.9, {"min_coverage": 0.5})
    error = response.json()["detail"][0]
    assert response.status_code == 422
    assert error["loc"] == ["body", "policy", "min_coverage"]
    assert "locked by project 'locked'" in error["msg"]


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ({"policy": {"min_coverage": 95}}, "write 0.95, not 95"),
        ({"policy": {"colour": "red"}}, "unknown policy key 'colour'"),
        ({"policy": {}, "locked": ["colour"]}, "locked names unknown policy keys"),
        ({"thresholds": {}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_project_policy_is_rejected(server, body, pattern):
    response = put_policy(server, "strict", body)
    assert response.status_code == 422
    assert pattern in response.text
    assert (
        httpx.get(f"{server.url}/api/v1/projects/strict/policy").json()["version"]
        is None
    )


def test_waiver_marks_failed_gate_waived(server):
    failed = post_data_metrics(server, "waivers", 0.1).json()
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    response = httpx.post(
        f"{server.url}/api/v1/gates/{failed['id']}/waive",
        json={"reason": "known gap, fix in next sprint", "expires_at": expires},
    )
    stored = httpx.get(f"{server.url}/api/v1/gates/{failed['id']}").json()
    report = httpx.get(f"{server.url}/api/v1/gates/{failed['id']}/report.md").text
    junit = httpx.get(f"{server.url}/api/v1/gates/{failed['id']}/junit.xml").text
    assert response.status_code == 200
    assert stored["status"] == "waived"
    assert stored["waiver"]["original_status"] == "failed"
    assert stored["waiver"]["active"] is True
    assert "**Waived**" in report
    assert "known gap" in junit


def test_waiver_of_passed_gate_is_409(server):
    passed = post_data_metrics(server, "waivers", 0.99).json()
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = httpx.post(
        f"{server.url}/api/v1/gates/{passed['id']}/waive",
        json={"reason": "not needed", "expires_at": expires},
    )
    assert response.status_code == 409
    assert "only failed, error or inconclusive" in response.json()["detail"][0]["msg"]


def test_waiver_in_the_past_is_rejected(server):
    failed = post_data_metrics(server, "waivers", 0.1).json()
    response = httpx.post(
        f"{server.url}/api/v1/gates/{failed['id']}/waive",
        json={"reason": "too late", "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert response.status_code == 422
    assert "is not in the future" in response.json()["detail"][0]["msg"]
