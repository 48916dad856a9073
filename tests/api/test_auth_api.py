"""Tokens and scopes on a server that requires them."""

from pathlib import Path

import httpx
import pytest

from tests.servers import LiveServer, live_server

pytestmark = pytest.mark.slow

ADMIN = "bootstrap-admin-secret-for-tests"
METRICS = {
    "kind": "data",
    "original": {"coverage": 1.0},
    "subset": {"coverage": 0.99},
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def secured(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"secured-{request.param}")
    # These tests send many wrong tokens from one address on purpose, so the
    # failed-authentication limit is off here.
    env = {"DISTILGATE_ADMIN_TOKEN": ADMIN, "DISTILGATE_AUTH_FAILURES_PER_MINUTE": "0"}
    with live_server(request.param, root, env) as live:
        yield live


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def make_token(server, scopes, projects=("*",)):
    response = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "-".join(scopes), "scopes": scopes, "projects": list(projects)},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_missing_token_is_401_with_challenge(secured):
    response = httpx.get(f"{secured.url}/api/v1/gates")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing token" in response.json()["detail"][0]["msg"]


def test_wrong_token_is_401(secured):
    response = httpx.get(f"{secured.url}/api/v1/gates", headers=bearer("dg_nope"))
    assert response.status_code == 401
    assert "not valid or was revoked" in response.json()["detail"][0]["msg"]


def test_read_token_cannot_submit(secured):
    token = make_token(secured, ["read"])["token"]
    response = httpx.post(
        f"{secured.url}/api/v1/gates/metrics", json=METRICS, headers=bearer(token)
    )
    assert response.status_code == 403
    assert "lacks the 'submit' scope" in response.json()["detail"][0]["msg"]


def test_submit_token_can_submit_but_not_admin(secured):
    token = make_token(secured, ["submit"])["token"]
    submitted = httpx.post(
        f"{secured.url}/api/v1/gates/metrics", json=METRICS, headers=bearer(token)
    )
    admin_call = httpx.get(f"{secured.url}/api/v1/tokens", headers=bearer(token))
    assert submitted.status_code == 200
    assert admin_call.status_code == 403


def test_project_token_sees_only_its_project(secured):
    token = make_token(secured, ["submit", "read"], ["alpha"])["token"]
    other = httpx.post(
        f"{secured.url}/api/v1/gates/metrics",
        json={**METRICS, "project": "beta"},
        headers=bearer(ADMIN),
    ).json()
    lookup = httpx.get(
        f"{secured.url}/api/v1/gates/{other['id']}", headers=bearer(token)
    )
    listed = httpx.get(f"{secured.url}/api/v1/gates", headers=bearer(token)).json()
    submit_other = httpx.post(
        f"{secured.url}/api/v1/gates/metrics",
        json={**METRICS, "project": "beta"},
        headers=bearer(token),
    )
    assert lookup.status_code == 404
    assert lookup.json()["detail"][0]["msg"] == f"gate {other['id']!r} not found"
    assert all(item["project"] == "alpha" for item in listed["items"])
    assert submit_other.status_code == 403


def test_revoked_token_is_401(secured):
    created = make_token(secured, ["read"])
    httpx.delete(f"{secured.url}/api/v1/tokens/{created['id']}", headers=bearer(ADMIN))
    response = httpx.get(
        f"{secured.url}/api/v1/gates", headers=bearer(created["token"])
    )
    assert response.status_code == 401


def test_token_listing_hides_secrets(secured):
    created = make_token(secured, ["read"])
    listed = httpx.get(f"{secured.url}/api/v1/tokens", headers=bearer(ADMIN)).json()
    assert created["token"].startswith(created["prefix"])
    assert created["token"] not in str(listed)
    assert any(item["prefix"] == created["prefix"] for item in listed)


def test_tokens_never_reach_the_log(secured):
    created = make_token(secured, ["read"])
    httpx.get(f"{secured.url}/api/v1/gates", headers=bearer(created["token"]))
    httpx.get(f"{secured.url}/api/v1/gates", headers=bearer("dg_wrong_token_value"))
    log = Path(secured.log_path).read_text()
    assert created["token"] not in log
    assert ADMIN not in log
    assert "dg_wrong_token_value" not in log


def test_public_read_lets_reads_through(tmp_path):
    env = {"DISTILGATE_ADMIN_TOKEN": ADMIN, "DISTILGATE_PUBLIC_READ": "true"}
    live = LiveServer(
        f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "data", tmp_path / "log", env
    ).start()
    try:
        read = httpx.get(f"{live.url}/api/v1/gates")
        write = httpx.post(f"{live.url}/api/v1/gates/metrics", json=METRICS)
    finally:
        live.stop()
    assert read.status_code == 200
    assert write.status_code == 401


# Every route, the scope it needs, and a request that is valid once authorised.
ROUTES = [
    ("GET", "/api/v1/gates", "read"),
    ("GET", "/api/v1/gates/{gate}", "read"),
    ("GET", "/api/v1/gates/{gate}/junit.xml", "read"),
    ("GET", "/api/v1/gates/{gate}/report.md", "read"),
    ("GET", "/api/v1/projects/scoped/badge.svg", "read"),
    ("GET", "/api/v1/projects/scoped/trend?metric=subset_coverage", "read"),
    ("GET", "/api/v1/projects/scoped/policy", "read"),
    ("POST", "/api/v1/gates/metrics", "submit"),
    ("POST", "/api/v1/gates/data", "submit"),
    ("POST", "/api/v1/gates/model", "submit"),
    ("PUT", "/api/v1/projects/scoped/policy", "admin"),
    ("POST", "/api/v1/gates/{gate}/waive", "admin"),
    ("GET", "/api/v1/tokens", "admin"),
    ("POST", "/api/v1/tokens", "admin"),
    ("DELETE", "/api/v1/tokens/0123456789abcdef0123456789abcdef", "admin"),
    ("GET", "/api/v1/webhooks", "admin"),
    ("POST", "/api/v1/webhooks", "admin"),
    ("GET", "/api/v1/webhooks/0123456789abcdef0123456789abcdef/deliveries", "admin"),
    ("POST", "/api/v1/webhooks/0123456789abcdef0123456789abcdef/secret", "admin"),
    ("DELETE", "/api/v1/webhooks/0123456789abcdef0123456789abcdef", "admin"),
    ("POST", "/api/v1/distill", "submit"),
    ("GET", "/api/v1/distill/{gate}/subset", "read"),
    ("GET", "/metrics", "read"),
]
# Scopes do not include each other, except that admin includes every scope.
SCOPES = ["read", "submit"]


@pytest.fixture(scope="module")
def scoped_gate(secured):
    response = httpx.post(
        f"{secured.url}/api/v1/gates/metrics",
        json={**METRICS, "project": "scoped"},
        headers=bearer(ADMIN),
    )
    return response.json()["id"]


@pytest.fixture(scope="module")
def tokens_by_scope(secured):
    return {scope: make_token(secured, [scope])["token"] for scope in SCOPES}


def call(server, method, path, gate, headers):
    return httpx.request(
        method, f"{server.url}{path.format(gate=gate)}", headers=headers, timeout=60
    )


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_route_without_token_is_401(secured, scoped_gate, method, path, scope):
    response = call(secured, method, path, scoped_gate, {})
    assert response.status_code == 401
    assert response.json()["detail"][0]["loc"] == ["header", "Authorization"]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_route_with_wrong_token_is_401(secured, scoped_gate, method, path, scope):
    response = call(secured, method, path, scoped_gate, bearer("dg_not_a_token"))
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_route_enforces_its_scope(
    secured, scoped_gate, tokens_by_scope, method, path, scope
):
    for held, token in tokens_by_scope.items():
        response = call(secured, method, path, scoped_gate, bearer(token))
        if held == scope:
            assert response.status_code not in (401, 403), (held, response.text)
        else:
            assert response.status_code == 403, (held, response.text)
            assert f"lacks the {scope!r} scope" in response.json()["detail"][0]["msg"]
