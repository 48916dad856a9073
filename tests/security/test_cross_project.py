"""A token limited to one project cannot tell another project's objects apart
from missing ones, because both return 404 with the same body, apart from the id.
"""

import httpx
import pytest

from tests.security.helpers import ADMIN, METRICS, SECRET, Receiver, bearer
from tests.servers import live_server

pytestmark = pytest.mark.slow

MISSING_GATE = "f" * 32
MISSING_HOOK = "e" * 32


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def secured(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"projects-{request.param}")
    env = {
        "DISTILGATE_ADMIN_TOKEN": ADMIN,
        "DISTILGATE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    }
    with live_server(request.param, root, env) as live:
        yield live


@pytest.fixture(scope="module")
def world(secured):
    """Gates in projects alpha and beta, and tokens limited to alpha."""

    def gate(project):
        response = httpx.post(
            f"{secured.url}/api/v1/gates/metrics",
            json={**METRICS, "project": project},
            headers=bearer(ADMIN),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def token(scopes):
        response = httpx.post(
            f"{secured.url}/api/v1/tokens",
            json={"name": "alpha", "scopes": scopes, "projects": ["alpha"]},
            headers=bearer(ADMIN),
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    receiver = Receiver()
    hook = httpx.post(
        f"{secured.url}/api/v1/webhooks",
        json={"url": receiver.url, "secret": SECRET, "projects": ["beta"]},
        headers=bearer(ADMIN),
    ).json()
    yield {
        "alpha_gate": gate("alpha"),
        "beta_gate": gate("beta"),
        "reader": token(["read", "submit"]),
        "admin": token(["admin"]),
        "beta_hook": hook["id"],
    }
    receiver.close()


def get(server, path, token, method="GET", **kwargs):
    return httpx.request(
        method, f"{server.url}{path}", headers=bearer(token), timeout=60, **kwargs
    )


def assert_same_404(hidden, missing, hidden_name, missing_name):
    assert hidden.status_code == 404, hidden.text
    assert missing.status_code == 404, missing.text
    assert hidden.text.replace(hidden_name, missing_name) == missing.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/gates/{id}",
        "/api/v1/gates/{id}/junit.xml",
        "/api/v1/gates/{id}/report.md",
        "/api/v1/distill/{id}/subset",
    ],
)
def test_other_project_gate_is_404_like_missing(secured, world, path):
    hidden_id = world["beta_gate"]
    hidden = get(secured, path.format(id=hidden_id), world["reader"])
    missing = get(secured, path.format(id=MISSING_GATE), world["reader"])
    own = get(secured, path.format(id=world["alpha_gate"]), world["reader"])
    assert_same_404(hidden, missing, hidden_id, MISSING_GATE)
    assert own.status_code != 404 or "distill" in path


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/{p}/policy",
        "/api/v1/projects/{p}/badge.svg",
        "/api/v1/projects/{p}/trend?metric=subset_coverage",
    ],
)
def test_other_project_pages_are_404_like_missing(secured, world, path):
    hidden = get(secured, path.format(p="beta"), world["reader"])
    missing = get(secured, path.format(p="zeta"), world["reader"])
    own = get(secured, path.format(p="alpha"), world["reader"])
    assert_same_404(hidden, missing, "beta", "zeta")
    assert own.status_code == 200


def test_lists_show_only_own_project(secured, world):
    everything = get(secured, "/api/v1/gates", world["reader"]).json()
    filtered = get(secured, "/api/v1/gates?project=beta", world["reader"]).json()
    by_commit = get(secured, "/api/v1/gates?limit=500", world["reader"]).json()
    assert {item["project"] for item in everything["items"]} == {"alpha"}
    assert filtered["items"] == []
    assert world["beta_gate"] not in str(by_commit)


def test_waiver_of_other_project_gate_is_404(secured, world):
    body = {"reason": "flaky", "expires_at": "2999-01-01T00:00:00Z"}
    hidden = get(
        secured,
        f"/api/v1/gates/{world['beta_gate']}/waive",
        world["admin"],
        method="POST",
        json=body,
    )
    missing = get(
        secured,
        f"/api/v1/gates/{MISSING_GATE}/waive",
        world["admin"],
        method="POST",
        json=body,
    )
    assert_same_404(hidden, missing, world["beta_gate"], MISSING_GATE)


def test_other_project_webhook_is_hidden(secured, world):
    hook = world["beta_hook"]
    listed = get(secured, "/api/v1/webhooks", world["admin"]).json()
    for suffix, method, body in [
        ("/deliveries", "GET", None),
        ("/secret", "POST", {"secret": "another-secret-value-123"}),
        ("", "DELETE", None),
    ]:
        hidden = get(
            secured,
            f"/api/v1/webhooks/{hook}{suffix}",
            world["admin"],
            method,
            json=body,
        )
        missing = get(
            secured,
            f"/api/v1/webhooks/{MISSING_HOOK}{suffix}",
            world["admin"],
            method,
            json=body,
        )
        assert_same_404(hidden, missing, hook, MISSING_HOOK)
    all_hooks = get(secured, "/api/v1/webhooks", ADMIN).json()
    assert all(item["id"] != hook for item in listed)
    assert hook in [item["id"] for item in all_hooks]


@pytest.mark.parametrize("projects", [["beta"], ["*"], ["alpha", "beta"]])
def test_project_admin_cannot_hook_other_projects(secured, world, projects):
    response = get(
        secured,
        "/api/v1/webhooks",
        world["admin"],
        method="POST",
        json={"url": "http://127.0.0.1:9/", "secret": SECRET, "projects": projects},
    )
    assert response.status_code == 403
    assert response.json()["detail"][0]["type"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens")],
)
def test_project_admin_cannot_manage_tokens(secured, world, method, path):
    body = {"name": "escalate", "scopes": ["admin"], "projects": ["*"]}
    response = get(
        secured, path, world["admin"], method, json=body if method == "POST" else None
    )
    assert response.status_code == 403
    assert "needs a token for all projects" in response.json()["detail"][0]["msg"]
