"""Query strings on a live server: unknown names, project filters, trend metrics."""

import httpx
import pytest

from tests.api.helpers import only_error

pytestmark = pytest.mark.slow

GATE_ID = "0" * 32


def post_metrics(server, project, coverage=0.99):
    body = {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": coverage},
    }
    response = httpx.post(f"{server.url}/api/v1/gates/metrics", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("method", "path", "params", "misspelt", "suggestion"),
    [
        ("GET", "/api/v1/gates", {"projcet": "digits"}, "projcet", "project"),
        ("GET", "/api/v1/gates", {"limt": "5"}, "limt", "limit"),
        ("GET", f"/api/v1/gates/{GATE_ID}", {"wiat": "1"}, "wiat", "wait"),
        (
            "GET",
            f"/api/v1/gates/{GATE_ID}/report.md",
            {"max_byte": "2000"},
            "max_byte",
            "max_bytes",
        ),
        ("GET", "/api/v1/projects/p/badge.svg", {"brnach": "x"}, "brnach", "branch"),
        (
            "GET",
            "/api/v1/projects/p/trend",
            {"metric": "m", "knd": "data"},
            "knd",
            "kind",
        ),
        ("GET", "/api/v1/webhooks/w/deliveries", {"limits": "5"}, "limits", "limit"),
        ("POST", "/api/v1/gates/metrics", {"wiat": "0"}, "wiat", "wait"),
    ],
)
def test_unknown_query_parameter_is_422(
    server, method, path, params, misspelt, suggestion
):
    response = httpx.request(method, f"{server.url}{path}", params=params, json={})
    error = only_error(response)
    assert response.status_code == 422, response.text
    assert error["loc"] == ["query", misspelt]
    assert f"unknown query parameter {misspelt!r}" in error["msg"]
    assert f"did you mean {suggestion!r}?" in error["msg"]


def test_route_without_query_parameters_names_none(server):
    response = httpx.get(f"{server.url}/api/v1/webhooks", params={"project": "p"})
    assert response.status_code == 422
    assert "this route takes no query parameters" in only_error(response)["msg"]


def test_token_in_query_keeps_its_own_error(server):
    response = httpx.get(f"{server.url}/api/v1/gates", params={"token": "abc"})
    assert response.status_code == 400
    assert only_error(response)["type"] == "token_in_query"


def test_documented_query_parameters_still_work(server):
    stored = post_metrics(server, "query-known")
    listed = httpx.get(
        f"{server.url}/api/v1/gates",
        params={"project": "query-known", "kind": "data", "limit": 1},
    )
    fetched = httpx.get(
        f"{server.url}/api/v1/gates/{stored['id']}",
        params={"wait": 0, "fail_on_verdict": "true"},
    )
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [stored["id"]]
    assert fetched.status_code == 200
    assert fetched.json()["id"] == stored["id"]


def test_invalid_project_filter_is_422(server):
    response = httpx.get(f"{server.url}/api/v1/gates", params={"project": "../../x"})
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["query", "project"]
    assert "'../../x' is not a valid project name" in error["msg"]


def test_trend_of_unknown_metric_is_422(server):
    post_metrics(server, "query-trend")
    response = httpx.get(
        f"{server.url}/api/v1/projects/query-trend/trend",
        params={"metric": "subset_coverag"},
    )
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["query", "metric"]
    assert "metric 'subset_coverag' is not in any of the 1 newest" in error["msg"]
    assert "did you mean 'subset_coverage'?" in error["msg"]


def test_trend_without_results_takes_any_metric(server):
    response = httpx.get(
        f"{server.url}/api/v1/projects/query-empty/trend",
        params={"metric": "anything"},
    )
    assert response.status_code == 200
    assert response.json()["points"] == []
