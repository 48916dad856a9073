"""Deliveries to allowlisted 127.0.0.1 listeners: signatures, rotation, redirects.

The server admits 127.0.0.1 through DISTILGATE_WEBHOOK_ALLOW_HOSTS; every
listener here runs on 127.0.0.1 in this process.
"""

import inspect
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from app.netguard import Allowlist, BlockedAddressError
from app.webhooks import (
    DeliveryRejectedError,
    PinnedTransport,
    sign,
    verify_delivery,
)
from tests.security.helpers import (
    SECRET,
    Receiver,
    deliveries,
    register_webhook,
    submit_metrics,
)
from tests.servers import live_server

pytestmark = pytest.mark.slow

ALLOW = {"DISTILGATE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
NEW_SECRET = "rotated-secret-9876543210"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def allowed(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"allowed-{request.param}")
    with live_server(request.param, root, dict(ALLOW)) as live:
        yield live


@pytest.fixture
def receiver():
    created = []

    def make(reply=None):
        created.append(Receiver(reply))
        return created[-1]

    yield make
    for item in created:
        item.close()


def delivered(server, target, project):
    """Register ``target`` for ``project``, submit a gate, return its delivery."""
    hook = register_webhook(server, target.url, project)
    assert hook.status_code == 201, hook.text
    gate = submit_metrics(server, project).json()
    headers, body = target.wait_for(1)[0]
    return hook.json(), gate, headers, body


def test_delivery_verifies_with_its_secret(allowed, receiver):
    target = receiver()
    _, gate, headers, body = delivered(allowed, target, "signed")
    delivery_id = verify_delivery([SECRET], headers, body, set())
    assert delivery_id == headers["x-distilgate-delivery"]
    assert json.loads(body)["gate"]["id"] == gate["id"]
    assert headers["x-distilgate-signature"].startswith("v1=")
    assert abs(int(headers["x-distilgate-timestamp"]) - time.time()) < 60


def test_tampered_delivery_is_rejected(allowed, receiver):
    target = receiver()
    _, _, headers, body = delivered(allowed, target, "tampered")
    forged_body = body.replace(b'"failed"', b'"passed"')
    assert forged_body != body
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery([SECRET], headers, forged_body, set())
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery(["another-secret-0123456"], headers, body, set())
    shifted = {**headers, "x-distilgate-timestamp": str(int(time.time()))}
    if shifted["x-distilgate-timestamp"] != headers["x-distilgate-timestamp"]:
        with pytest.raises(DeliveryRejectedError, match="no signature matches"):
            verify_delivery([SECRET], shifted, body, set())
    renamed = {**headers, "x-distilgate-delivery": "0" * 32}
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery([SECRET], renamed, body, set())


def test_stale_delivery_is_rejected(allowed, receiver):
    target = receiver()
    _, _, headers, body = delivered(allowed, target, "stale")
    sent = int(headers["x-distilgate-timestamp"])
    verify_delivery([SECRET], headers, body, set(), now=sent + 299)
    with pytest.raises(DeliveryRejectedError, match="is stale"):
        verify_delivery([SECRET], headers, body, set(), now=sent + 301)


def test_replayed_delivery_is_rejected(allowed, receiver):
    target = receiver()
    _, _, headers, body = delivered(allowed, target, "replay")
    seen = set()
    verify_delivery([SECRET], headers, body, seen)
    with pytest.raises(DeliveryRejectedError, match="already received"):
        verify_delivery([SECRET], headers, body, seen)


def test_rotation_signs_with_both_secrets(allowed, receiver):
    target = receiver()
    hook, _, _, _ = delivered(allowed, target, "rotate")
    rotated = httpx.post(
        f"{allowed.url}/api/v1/webhooks/{hook['id']}/secret",
        json={"secret": NEW_SECRET, "previous_valid_s": 3600},
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_secret_expires_at"] is not None
    submit_metrics(allowed, "rotate")
    headers, body = target.wait_for(2)[1]
    entries = headers["x-distilgate-signature"].split(", ")
    assert len(entries) == 2
    verify_delivery([SECRET], headers, body, set())
    verify_delivery([NEW_SECRET], headers, body, set())
    verify_delivery([NEW_SECRET, SECRET], headers, body, set())


def test_rotation_without_grace_drops_old_secret(allowed, receiver):
    target = receiver()
    hook, _, _, _ = delivered(allowed, target, "rotate-now")
    httpx.post(
        f"{allowed.url}/api/v1/webhooks/{hook['id']}/secret",
        json={"secret": NEW_SECRET, "previous_valid_s": 0},
    )
    submit_metrics(allowed, "rotate-now")
    headers, body = target.wait_for(2)[1]
    verify_delivery([NEW_SECRET], headers, body, set())
    with pytest.raises(DeliveryRejectedError, match="no signature matches"):
        verify_delivery([SECRET], headers, body, set())


def test_rotation_of_unknown_webhook_is_404(allowed):
    response = httpx.post(
        f"{allowed.url}/api/v1/webhooks/{'0' * 32}/secret",
        json={"secret": NEW_SECRET},
    )
    assert response.status_code == 404
    assert response.json()["detail"][0]["msg"] == f"webhook {'0' * 32!r} not found"


def test_redirect_is_not_followed(allowed, receiver):
    elsewhere = receiver()
    target = receiver(lambda: (302, {"location": elsewhere.url}))
    hook, _, _, _ = delivered(allowed, target, "redirect")
    attempts = deliveries(allowed, hook["id"], 1)
    assert elsewhere.requests == []
    assert attempts[0]["status_code"] == 302
    assert attempts[0]["delivered"] is False
    assert "not followed" in attempts[0]["error"]


def test_delivery_rechecks_stored_address(allowed, receiver):
    target = receiver()
    hook = register_webhook(allowed, target.url, "recheck").json()
    allowed.env.pop("DISTILGATE_WEBHOOK_ALLOW_HOSTS")
    allowed.restart()
    try:
        submit_metrics(allowed, "recheck")
        attempts = deliveries(allowed, hook["id"], 1)
    finally:
        allowed.env.update(ALLOW)
        allowed.restart()
    assert target.requests == []
    assert attempts[0]["delivered"] is False
    assert attempts[0]["status_code"] is None
    assert "BlockedAddressError" in attempts[0]["error"]
    assert "127.0.0.1 (loopback)" in attempts[0]["error"]


def test_transport_pins_checked_address(monkeypatch, receiver):
    """A name is resolved once, so a second, different result is never used."""
    target = receiver()
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            lookups.append(host)
            if len(lookups) > 1:
                raise socket.gaierror("second lookup of rebind.test")
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    transport = PinnedTransport(Allowlist.parse(["127.0.0.1"]))
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        response = client.post(f"http://rebind.test:{target.port}/hook", content=b"x")
    assert response.status_code == 204
    assert lookups == ["rebind.test"]
    assert target.requests[0][0]["host"] == f"rebind.test:{target.port}"


def test_transport_blocks_before_connecting(receiver):
    target = receiver()
    transport = PinnedTransport(Allowlist())
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(BlockedAddressError, match="loopback"),
    ):
        client.post(f"http://localhost:{target.port}/hook", content=b"x")
    assert target.requests == []


def test_sign_covers_id_timestamp_and_body():
    base = sign(SECRET, "a" * 32, 1_700_000_000, b"{}")
    assert sign(SECRET, "b" * 32, 1_700_000_000, b"{}") != base
    assert sign(SECRET, "a" * 32, 1_700_000_001, b"{}") != base
    assert sign(SECRET, "a" * 32, 1_700_000_000, b"{ }") != base


def documented_verifier():
    """Return the namespace of the verifier code block in docs/security.md."""
    text = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert block is not None
    return block.group(1)


def test_documented_verifier_matches_module(allowed, receiver):
    code = documented_verifier()
    namespace = {}
    exec(compile(code, "docs/security.md", "exec"), namespace)
    target = receiver()
    _, _, headers, body = delivered(allowed, target, "documented")
    seen = set()
    assert inspect.getsource(verify_delivery) in code
    assert inspect.getsource(sign) in code
    assert namespace["verify_delivery"]([SECRET], headers, body, seen)
    with pytest.raises(namespace["DeliveryRejectedError"], match="already"):
        namespace["verify_delivery"]([SECRET], headers, body, seen)
