"""Fuzz every operation of the OpenAPI spec on the live server: no 5xx responses.

schemathesis generates requests from the spec the server publishes and sends
them to the live server (SQLite, then PostgreSQL). Webhook operations are left
out, because a generated webhook URL could point the server at any host; their
inputs are tested against loopback listeners elsewhere. The example count per
operation is small, so the run stays bounded in time.

The operations are driven through hypothesis directly instead of
schemathesis' pytest plugin, whose fixture support fails on pytest 9
(schemathesis 4.32).
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 8
REQUEST_TIMEOUT_S = 30
WAITING_PATHS = {
    "/api/v1/gates/model",
    "/api/v1/gates/data",
    "/api/v1/gates/metrics",
    "/api/v1/distill",
}
EXCLUDED_PATHS = r"^/api/v1/webhooks"


def operations(url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema = schema.exclude(path_regex=EXCLUDED_PATHS)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation: schemathesis.APIOperation, base_url: str) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        # A gate posted with wait > 0, or without wait (300 s by default), would
        # hold the request until its verdict, behind every gate queued before.
        if case.method.upper() == "POST" and case.path in WAITING_PATHS:
            case.query = {**(case.query or {}), "wait": 0}
        response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        case.validate_response(response, checks=[not_a_server_error])

    check()


def test_spec_lists_operations(server) -> None:
    labels = {operation.label for operation in operations(server.url)}
    assert "POST /api/v1/gates/data" in labels
    assert "GET /api/v1/gates/{gate_id}" in labels
    assert not any("/webhooks" in label for label in labels)


def test_api_never_returns_5xx(server) -> None:
    failures = {}
    for operation in operations(server.url):
        try:
            fuzz(operation, server.url)
        # Collect every operation's failure (a 5xx, or a request that could not
        # be sent) before failing, so one run lists them all.
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    assert failures == {}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "ci\x00bot", "scopes": ["read"]}, ["body", "name"]),
        (
            {"name": "ci", "scopes": ["read"], "projects": ["a\x00"]},
            ["body", "projects", 0],
        ),
    ],
    ids=["name", "project"],
)
def test_token_text_with_nul_is_422(server, body: dict[str, object], loc: list) -> None:
    # PostgreSQL cannot store NUL, so validation must reject it before the insert.
    response = httpx.post(f"{server.url}/api/v1/tokens", json=body, timeout=30)
    error = response.json()["detail"][0]
    assert response.status_code == 422
    assert error["loc"] == loc
    assert error["msg"] == "Value error, must not contain NUL (\\x00) characters"


def test_trend_branch_with_nul_is_422(server) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/projects/demo/trend",
        params={"metric": "accuracy", "branch": "main\x00"},
        timeout=30,
    )
    error = response.json()["detail"][0]
    assert response.status_code == 422
    assert error["loc"] == ["query", "branch"]
    assert error["msg"].startswith("branch must be at most 255 printable")


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("DELETE", "/api/v1/tokens/a%00b", "token_id"),
        ("GET", "/api/v1/webhooks/a%00b/deliveries", "webhook_id"),
    ],
)
def test_id_with_nul_is_404(server, method: str, path: str, field: str) -> None:
    response = httpx.request(method, f"{server.url}{path}", timeout=30)
    error = response.json()["detail"][0]
    assert response.status_code == 404
    assert error["loc"][-1] == field
    assert error["msg"].endswith("'a\\x00b' not found")
