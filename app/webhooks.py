"""Outgoing webhooks: a signed POST of every terminal gate result.

Each delivery carries ``X-DistilGate-Signature: t=<unix seconds>,v1=<hex>``,
where ``v1`` is HMAC-SHA256 with the webhook's secret over
``<delivery id>.<timestamp>.<body>``, and the delivery id in
``X-DistilGate-Delivery``. A receiver recomputes the HMAC, compares it in
constant time, and rejects old timestamps and repeated delivery ids. Failed
deliveries are retried with exponential backoff; every attempt is recorded.
Redirects are never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app.schemas import GateResult
from app.storage.models import GateRecord, Webhook, WebhookDelivery
from app.storage.projects import WebhookRepository

logger = logging.getLogger(__name__)

SessionScope = Callable[[], AbstractContextManager[Session]]
EVENT = "gate.finished"


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1`` signature of a delivery."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    delivery_id: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """Check a signature header as a receiver would; False for stale or forged."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, delivery_id, timestamp, body)
    return hmac.compare_digest(expected, fields.get("v1", ""))


class WebhookDispatcher:
    """Delivers results to webhooks on a small thread pool, with retries."""

    def __init__(
        self,
        sessions: SessionScope,
        *,
        retry_delays_s: tuple[float, ...] = (1.0, 5.0, 25.0),
        timeout_s: float = 10.0,
    ):
        self._sessions = sessions
        self._delays = retry_delays_s
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="distilgate-webhook")

    def notify(self, record: GateRecord) -> None:
        """Queue a delivery of ``record`` to every webhook of its project."""
        with self._sessions() as session:
            hooks = WebhookRepository(session).for_project(record.project)
            targets = [(hook.id, hook.url, hook.secret) for hook in hooks]
        if not targets:
            return
        payload = {"event": EVENT, "gate": _result_json(record)}
        body = json.dumps(payload, separators=(",", ":")).encode()
        for target in targets:
            self._pool.submit(self._deliver, *target, record.id, body)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(
        self, hook_id: str, url: str, secret: str, gate_id: str, body: bytes
    ) -> None:
        for attempt in range(1, len(self._delays) + 2):
            if self._attempt(hook_id, url, secret, gate_id, body, attempt):
                return
            if attempt <= len(self._delays):
                time.sleep(self._delays[attempt - 1])
        logger.warning("webhook gave up webhook_id=%s gate_id=%s", hook_id, gate_id)

    def _attempt(
        self,
        hook_id: str,
        url: str,
        secret: str,
        gate_id: str,
        body: bytes,
        attempt: int,
    ) -> bool:
        delivery_id = uuid.uuid4().hex
        status, error = _post(url, secret, delivery_id, body, self._timeout_s)
        delivered = status is not None and 200 <= status < 300
        self._record(hook_id, gate_id, delivery_id, attempt, status, error, delivered)
        if not delivered:
            logger.warning(
                "webhook delivery failed webhook_id=%s gate_id=%s attempt=%d "
                "status=%s error=%s",
                hook_id,
                gate_id,
                attempt,
                status,
                error,
            )
        return delivered

    def _record(
        self,
        hook_id: str,
        gate_id: str,
        delivery_id: str,
        attempt: int,
        status: int | None,
        error: str | None,
        delivered: bool,
    ) -> None:
        delivery = WebhookDelivery(
            id=delivery_id,
            webhook_id=hook_id,
            gate_id=gate_id,
            attempt=attempt,
            status_code=status,
            error=error,
            delivered=delivered,
            created_at=datetime.now(UTC),
        )
        with self._sessions() as session:
            WebhookRepository(session).add_delivery(delivery)


def _post(
    url: str, secret: str, delivery_id: str, body: bytes, timeout_s: float
) -> tuple[int | None, str | None]:
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "DistilGate-Webhook",
        "x-distilgate-event": EVENT,
        "x-distilgate-delivery": delivery_id,
        "x-distilgate-signature": (
            f"t={timestamp},v1={sign(secret, delivery_id, timestamp, body)}"
        ),
    }
    try:
        response = httpx.post(
            url,
            content=body,
            headers=headers,
            timeout=timeout_s,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return response.status_code, None if response.is_success else response.text[:200]


def _result_json(record: GateRecord) -> dict[str, Any]:
    return GateResult.from_record(record).model_dump(mode="json")


def new_webhook(url: str, secret: str, projects: list[str]) -> Webhook:
    """Build a webhook record for ``url``."""
    return Webhook(
        id=uuid.uuid4().hex,
        url=url,
        secret=secret,
        projects=sorted(set(projects)),
        active=True,
        created_at=datetime.now(UTC),
    )
