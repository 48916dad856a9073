"""Live servers and 127.0.0.1 listeners for the security tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.servers import LiveServer

ADMIN = "security-admin-token-for-tests"
SECRET = "webhook-secret-0123456789"
METRICS = {"kind": "data", "original": {"coverage": 1.0}, "subset": {"coverage": 0.5}}

Reply = Callable[[], tuple[int, dict[str, str]]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Receiver:
    """A 127.0.0.1 HTTP listener that records every POST and responds with ``reply``."""

    def __init__(self, reply: Reply | None = None):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.reply = reply or (lambda: (204, {}))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((headers, body))
                status, extra = receiver.reply()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float = 30) -> list:
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register_webhook(
    server: LiveServer, url: str, project: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/webhooks",
        json={"url": url, "secret": SECRET, "projects": [project]},
        headers=headers,
    )


def submit_metrics(
    server: LiveServer, project: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/gates/metrics",
        json={**METRICS, "project": project},
        headers=headers,
        timeout=60,
    )


def deliveries(
    server: LiveServer, hook_id: str, count: int, timeout_s: float = 30
) -> list[dict]:
    """Poll a webhook's recorded attempts until ``count`` are there."""
    deadline = time.monotonic() + timeout_s
    found: list[dict] = []
    while time.monotonic() < deadline:
        found = httpx.get(
            f"{server.url}/api/v1/webhooks/{hook_id}/deliveries",
            headers=bearer(ADMIN),
        ).json()
        if len(found) >= count:
            break
        time.sleep(0.1)
    return sorted(found, key=lambda item: item["attempt"])
