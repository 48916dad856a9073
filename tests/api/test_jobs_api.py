"""Gates as background jobs: waiting, 202, long-polling and verdict statuses."""

import httpx
import pytest

from tests.api.helpers import post_files

pytestmark = pytest.mark.slow


def data_body(project, coverage, **extra):
    return {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": coverage},
        **extra,
    }


def post_metrics(server, body, **params):
    return httpx.post(
        f"{server.url}/api/v1/gates/metrics", json=body, params=params, timeout=60
    )


def test_post_without_wait_answers_202_with_location(server, artifacts):
    files = {
        "teacher": artifacts["teacher"],
        "student": artifacts["student"],
        "dataset": artifacts["digits_test_npz"],
    }
    response = post_files(server.url, "model", files, project="jobs")
    accepted = httpx.post(
        f"{server.url}/api/v1/gates/model",
        params={"wait": 0},
        files={k: (p.name, p.read_bytes()) for k, p in files.items()},
        data={"project": "jobs"},
        timeout=60,
    )
    body = accepted.json()
    assert response.status_code == 200
    assert accepted.status_code == 202
    assert body["status"] in ("queued", "running")
    assert accepted.headers["location"] == f"/api/v1/gates/{body['id']}"
    assert int(accepted.headers["retry-after"]) > 0
    polled = httpx.get(
        f"{server.url}{accepted.headers['location']}", params={"wait": 120}, timeout=200
    )
    assert polled.status_code == 200
    assert polled.json()["status"] == "passed"
    assert polled.json()["finished_at"] is not None


def test_fail_on_verdict_turns_failed_into_412(server):
    response = post_metrics(server, data_body("verdicts", 0.5), fail_on_verdict="true")
    assert response.status_code == 412
    assert response.json()["status"] == "failed"


def test_fail_on_verdict_keeps_passed_200(server):
    response = post_metrics(server, data_body("verdicts", 0.99), fail_on_verdict="true")
    assert response.status_code == 200
    assert response.json()["status"] == "passed"


def test_get_with_fail_on_verdict_reports_stored_failure(server):
    failed = post_metrics(server, data_body("verdicts", 0.1)).json()
    response = httpx.get(
        f"{server.url}/api/v1/gates/{failed['id']}",
        params={"fail_on_verdict": "true"},
    )
    assert response.status_code == 412


def test_idempotency_key_returns_first_result(server):
    headers = {"Idempotency-Key": "build-42-data"}
    body = data_body("retries", 0.97)
    first = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body, headers=headers)
    second = httpx.post(
        f"{server.url}/api/v1/gates/metrics", json=body, headers=headers
    )
    listed = httpx.get(f"{server.url}/api/v1/gates", params={"project": "retries"})
    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert len(listed.json()["items"]) == 1


def test_idempotency_key_reused_for_other_inputs_is_409(server):
    headers = {"Idempotency-Key": "build-43"}
    url = f"{server.url}/api/v1/gates/metrics"
    httpx.post(url, json=data_body("retries", 0.97), headers=headers)
    response = httpx.post(url, json=data_body("retries", 0.5), headers=headers)
    assert response.status_code == 409
    assert "already used for a different request" in response.json()["detail"][0]["msg"]


def test_same_inputs_give_same_fingerprint_and_verdict(server):
    body = data_body("repeat", 0.96, commit="c1")
    first = post_metrics(server, body).json()
    second = post_metrics(server, body).json()
    assert first["fingerprint"] == second["fingerprint"]
    assert first["status"] == second["status"] == "passed"
    previous = second["comparison"]["previous_run"]
    assert previous["id"] == first["id"]
    assert previous["same_inputs"] is True
    assert second["verdict_changed"] is False


def test_history_shows_commit_verdict_change(server):
    post_metrics(server, data_body("flaky", 0.99, commit="abc"))
    changed = post_metrics(server, data_body("flaky", 0.50, commit="abc")).json()
    assert changed["verdict_changed"] is True
    assert changed["comparison"]["previous_run"]["status"] == "passed"
    assert changed["comparison"]["previous_run"]["same_inputs"] is False


def test_result_carries_deltas_against_last_passing(server):
    body = data_body("baseline", 0.99, branch="main")
    passing = post_metrics(server, body).json()
    post_metrics(server, data_body("baseline", 0.10, branch="main"))
    later = post_metrics(server, data_body("baseline", 0.97, branch="main")).json()
    baseline = later["comparison"]["baseline"]
    assert baseline["id"] == passing["id"]
    assert baseline["deltas"]["subset_coverage"] == pytest.approx(0.97 - 0.99)


def test_history_filters_commit_and_time(server):
    first = post_metrics(server, data_body("timeline", 0.99, commit="one")).json()
    post_metrics(server, data_body("timeline", 0.99, commit="two"))
    url = f"{server.url}/api/v1/gates"
    by_commit = httpx.get(url, params={"project": "timeline", "commit": "one"}).json()
    since = httpx.get(
        url, params={"project": "timeline", "since": first["created_at"]}
    ).json()
    until = httpx.get(
        url, params={"project": "timeline", "until": first["created_at"]}
    ).json()
    assert [item["id"] for item in by_commit["items"]] == [first["id"]]
    assert len(since["items"]) == 2
    assert until["items"] == []


def test_trend_returns_metric_series_oldest_first(server):
    for coverage in (0.90, 0.95, 0.99):
        post_metrics(server, data_body("trend", coverage, branch="main"))
    response = httpx.get(
        f"{server.url}/api/v1/projects/trend/trend",
        params={"metric": "subset_coverage", "branch": "main"},
    )
    points = response.json()["points"]
    assert response.status_code == 200
    assert [point["value"] for point in points] == [0.90, 0.95, 0.99]
    assert [point["status"] for point in points] == ["failed", "passed", "passed"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"wait": -1}, "wait"),
        ({"wait": 601}, "wait"),
        ({"since": "yesterday"}, "since"),
        ({"limit": 0}, "limit"),
        ({"status": "green"}, "status"),
    ],
)
def test_bad_query_values_are_named(server, params, field):
    url = f"{server.url}/api/v1/gates"
    if "wait" in params:
        url = f"{server.url}/api/v1/gates/none"
    response = httpx.get(url, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field
