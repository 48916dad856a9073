"""Webhook URLs that reach internal hosts are rejected at registration.

The server here has no allowlist; nothing in this module connects anywhere
but to the server and to listeners it starts on 127.0.0.1.
"""

import time
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import only_error
from tests.security.helpers import Receiver, register_webhook, submit_metrics
from tests.servers import live_server

pytestmark = pytest.mark.slow

INTERNAL_URLS = [
    "http://127.0.0.1/hook",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://127.0.1:8080/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://localhost/",
    "http://LOCALHOST./hook",
    "http://user:pass@127.0.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/",
    "http://100.100.100.200/",
    "http://[fe80::1%25eth0]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "https://[2002:7f00:1::]/",
    "https://[64:ff9b::7f00:1]/",
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def guarded(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"guarded-{request.param}")
    with live_server(request.param, root) as live:
        yield live


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_webhook_url_rejected(guarded, url):
    response = register_webhook(guarded, url, "ssrf")
    error = only_error(response)
    assert response.status_code == 422
    assert error["loc"] == ["body", "url"]
    assert error["input"] == url
    assert repr(url) in error["msg"]
    assert "DISTILGATE_WEBHOOK_ALLOW_HOSTS" in error["msg"]


def hosts_file_loopback_names():
    """Return the names /etc/hosts maps to a loopback address (no DNS needed)."""
    names = []
    for line in Path("/etc/hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1 and fields[0].startswith(("127.", "::1")):
            names.extend(fields[1:])
    return names or ["localhost"]


@pytest.mark.parametrize("name", hosts_file_loopback_names())
def test_hosts_file_loopback_names_rejected(guarded, name):
    response = register_webhook(guarded, f"http://{name}:9/", "ssrf")
    assert response.status_code == 422, name
    assert "loopback" in only_error(response)["msg"]


def test_octal_address_rejected_as_invalid(guarded):
    response = register_webhook(guarded, "http://0177.0.0.1/", "ssrf")
    assert response.status_code == 422
    assert "is not a valid URL" in only_error(response)["msg"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:25/"])
def test_non_http_webhook_url_rejected(guarded, url):
    response = register_webhook(guarded, url, "ssrf")
    assert response.status_code == 422
    assert "must start with http:// or https://" in only_error(response)["msg"]


def test_rejected_listener_never_called(guarded):
    listener = Receiver()
    try:
        response = register_webhook(guarded, listener.url, "never")
        submit_metrics(guarded, "never")
        time.sleep(1)
    finally:
        listener.close()
    assert response.status_code == 422
    assert listener.requests == []
    listed = httpx.get(f"{guarded.url}/api/v1/webhooks").json()
    assert all(hook["url"] != listener.url for hook in listed)
