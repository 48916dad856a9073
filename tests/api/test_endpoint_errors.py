"""Bad input on the project, report and admin endpoints: 4xx naming the field."""

import httpx
import pytest

pytestmark = pytest.mark.slow

UNKNOWN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "loc_tail"),
    [
        ("GET", "/api/v1/projects/p/trend", None, 422, "metric"),
        ("GET", "/api/v1/projects/p/trend?metric=x&limit=0", None, 422, "limit"),
        ("GET", "/api/v1/projects/p/badge.svg?kind=speed", None, 422, "kind"),
        ("GET", "/api/v1/projects/a%00b/policy", None, 422, "project"),
        ("PUT", "/api/v1/projects/bad%20name/policy", {"policy": {}}, 422, "project"),
        ("POST", "/api/v1/tokens", {"name": "x", "scopes": ["root"]}, 422, 0),
        ("POST", "/api/v1/tokens", {"name": "x", "scopes": []}, 422, "scopes"),
        ("DELETE", f"/api/v1/tokens/{UNKNOWN}", None, 404, "token_id"),
        (
            "POST",
            "/api/v1/webhooks",
            {"url": "http://x", "secret": "short"},
            422,
            "secret",
        ),
        ("GET", f"/api/v1/webhooks/{UNKNOWN}/deliveries", None, 404, "webhook_id"),
        (
            "POST",
            f"/api/v1/gates/{UNKNOWN}/waive",
            {"reason": "why not", "expires_at": "2099-01-01T00:00:00Z"},
            404,
            "gate_id",
        ),
        ("POST", f"/api/v1/gates/{UNKNOWN}/waive", {"reason": "x"}, 422, "reason"),
    ],
)
def test_endpoint_rejects_bad_input(server, method, path, body, status, loc_tail):
    response = httpx.request(method, f"{server.url}{path}", json=body)
    detail = response.json()["detail"]
    assert response.status_code == status, response.text
    assert any(error["loc"][-1] == loc_tail for error in detail), detail
