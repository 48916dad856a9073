"""Outgoing webhooks: signed deliveries to a receiver on 127.0.0.1, with retries.

The server admits 127.0.0.1 through DISTILGATE_WEBHOOK_ALLOW_HOSTS, because
webhooks to internal addresses are refused by default.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.webhooks import DeliveryRejectedError, verify_delivery
from tests.servers import live_server

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-0123456789"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """A running service that may deliver webhooks to 127.0.0.1."""
    root = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    env = {"DISTILGATE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    with live_server(request.param, root, env) as live:
        yield live


class Receiver:
    """An HTTP server that records POSTs and fails the first ``failures`` of them."""

    def __init__(self, failures=0):
        self.requests = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, body)
                )
                failing = len(receiver.requests) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    created = []

    def make(failures=0):
        created.append(Receiver(failures))
        return created[-1]

    yield make
    for item in created:
        item.close()


def register(server, url, project):
    response = httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": url, "secret": SECRET, "projects": [project]},
    )
    assert response.status_code == 201, response.text
    return response.json()


def submit(server, project):
    body = {
        "kind": "data",
        "project": project,
        "original": {"coverage": 1.0},
        "subset": {"coverage": 0.5},
    }
    return httpx.post(f"{server.url}/api/v1/gates/metrics", json=body).json()


def test_webhook_receives_signed_result(server, receiver):
    target = receiver()
    register(server, target.url, "hooked")
    gate = submit(server, "hooked")
    headers, body = target.wait_for(1)[0]
    payload = json.loads(body)
    assert payload["event"] == "gate.finished"
    assert payload["gate"]["id"] == gate["id"]
    assert payload["gate"]["status"] == "failed"
    assert (
        verify_delivery([SECRET], headers, body, set())
        == (headers["x-distilgate-delivery"])
    )


def test_webhook_signature_rejects_tampering(server, receiver):
    target = receiver()
    register(server, target.url, "tamper")
    submit(server, "tamper")
    headers, body = target.wait_for(1)[0]
    tampered = body.replace(b"failed", b"passed")
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery([SECRET], headers, tampered, set())
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery(["another-secret-value"], headers, body, set())
    with pytest.raises(DeliveryRejectedError, match="is stale"):
        verify_delivery([SECRET], headers, body, set(), now=time.time() + 3600)


def test_failed_delivery_is_retried_and_recorded(server, receiver):
    target = receiver(failures=1)
    hook = register(server, target.url, "retry")
    gate = submit(server, "retry")
    target.wait_for(2)
    deliveries = []
    for _ in range(50):
        deliveries = httpx.get(
            f"{server.url}/api/v1/webhooks/{hook['id']}/deliveries"
        ).json()
        if len(deliveries) == 2:
            break
        time.sleep(0.1)
    attempts = sorted(deliveries, key=lambda d: d["attempt"])
    assert [d["attempt"] for d in attempts] == [1, 2]
    assert [d["status_code"] for d in attempts] == [500, 204]
    assert [d["delivered"] for d in attempts] == [False, True]
    assert [d["error"] for d in attempts] == ["HTTP 500", None]
    assert {d["gate_id"] for d in attempts} == {gate["id"]}


def test_webhook_of_other_project_is_not_called(server, receiver):
    target = receiver()
    register(server, target.url, "quiet")
    submit(server, "noisy")
    time.sleep(1)
    assert target.requests == []


def test_webhook_url_must_be_http(server):
    response = httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": "file:///etc/passwd", "secret": SECRET},
    )
    assert response.status_code == 422
    assert "must start with http:// or https://" in response.json()["detail"][0]["msg"]


def test_webhook_project_must_be_valid_name(server):
    response = httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "secret": SECRET, "projects": ["../x"]},
    )
    error = response.json()["detail"][0]
    assert response.status_code == 422
    assert error["loc"] == ["body", "projects", "0"]
    assert "'../x' is not a valid project name" in error["msg"]
    assert ["../x"] not in [hook["projects"] for hook in list_hooks(server)]


def test_deleted_webhook_is_gone(server, receiver):
    target = receiver()
    hook = register(server, target.url, "deleted")
    submit(server, "deleted")
    target.wait_for(1)
    url = f"{server.url}/api/v1/webhooks/{hook['id']}"

    deleted = httpx.delete(url)
    again = httpx.delete(url)
    deliveries = httpx.get(f"{url}/deliveries")
    submit(server, "deleted")
    time.sleep(1)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert again.status_code == 404
    assert f"webhook {hook['id']!r} not found" in again.json()["detail"][0]["msg"]
    assert deliveries.status_code == 404
    assert hook["id"] not in [item["id"] for item in list_hooks(server)]
    assert len(target.requests) == 1


def list_hooks(server):
    response = httpx.get(f"{server.url}/api/v1/webhooks")
    assert response.status_code == 200, response.text
    return response.json()
