"""Outgoing webhooks: a signed POST of every terminal gate result.

Each delivery carries its id in ``X-DistilGate-Delivery``, the Unix time it was
signed at in ``X-DistilGate-Timestamp``, and ``X-DistilGate-Signature:
v1=<hex>``: HMAC-SHA256 with the webhook's secret over
``<delivery id>.<timestamp>.<body>``. While a rotated-out secret is still valid
the header carries one ``v1=`` entry per secret, separated by ", ".
``verify_delivery`` is the reference check a receiver runs.

Deliveries go only to public addresses or to hosts in the allowlist: the host
is resolved once, every address is checked, and the connection goes to a
checked address (see ``app.netguard``). Redirects are never followed; a 3xx is
a failed delivery. Failed deliveries are retried with exponential backoff and
every attempt is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableSet
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app import netguard
from app.errors import InputError
from app.schemas import GateResult
from app.storage.models import GateRecord, Webhook, WebhookDelivery
from app.storage.projects import WebhookRepository

logger = logging.getLogger(__name__)

SessionScope = Callable[[], AbstractContextManager[Session]]
EVENT = "gate.finished"
TOLERANCE_S = 300


class DeliveryRejectedError(ValueError):
    """A received delivery is forged, tampered with, stale or replayed."""


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``<delivery id>.<timestamp>.<body>``."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(
    secrets: Iterable[str], delivery_id: str, timestamp: int, body: bytes
) -> str:
    """Return the ``X-DistilGate-Signature`` value: one ``v1=`` per secret."""
    return ", ".join(
        f"v1={sign(secret, delivery_id, timestamp, body)}" for secret in secrets
    )


def verify_delivery(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    seen: MutableSet[str],
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> str:
    """Check a received delivery as a receiver should; return its delivery id.

    ``secrets`` are the secrets the receiver accepts (two during a rotation).
    ``seen`` stores the delivery ids already accepted; keep them for at least
    ``tolerance_s`` seconds.

    Raises:
        DeliveryRejectedError: a header is missing, the timestamp is more than
            ``tolerance_s`` seconds away, no signature matches, or the
            delivery id was accepted before.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    delivery_id = lowered.get("x-distilgate-delivery", "")
    raw_timestamp = lowered.get("x-distilgate-timestamp", "")
    if not delivery_id or not raw_timestamp.isdigit():
        raise DeliveryRejectedError("missing delivery id or timestamp")

    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise DeliveryRejectedError(f"timestamp {timestamp} is stale")

    received = [
        value.strip()
        for scheme, _, value in (
            entry.strip().partition("=")
            for entry in lowered.get("x-distilgate-signature", "").split(",")
        )
        if scheme == "v1"
    ]
    expected = [sign(secret, delivery_id, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(want, got) for want in expected for got in received):
        raise DeliveryRejectedError("no signature matches")

    if delivery_id in seen:
        raise DeliveryRejectedError(f"delivery {delivery_id} was already received")
    seen.add(delivery_id)
    return delivery_id


def active_secrets(hook: Webhook, now: datetime) -> tuple[str, ...]:
    """Return the secrets deliveries are signed with: current, then previous."""
    expires = hook.previous_secret_expires_at
    if hook.previous_secret and expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires > now:
            return (hook.secret, hook.previous_secret)
    return (hook.secret,)


class PinnedTransport(httpx.HTTPTransport):
    """Connects only to checked addresses of the request's host.

    The host is resolved once per request. The request then goes to the first
    checked address that accepts a connection, with the original ``Host``
    header and TLS server name, so DNS rebinding cannot redirect it.
    """

    def __init__(self, allowlist: netguard.Allowlist, **kwargs: Any):
        # No kept-alive connections: the pool is keyed by address, so a
        # connection verified for one host name could serve another name
        # on the same address.
        kwargs.setdefault("limits", httpx.Limits(max_keepalive_connections=0))
        super().__init__(**kwargs)
        self.allowlist = allowlist

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        addresses = netguard.checked_addresses(host, port, self.allowlist)
        request.extensions = {**request.extensions, "sni_hostname": host}
        error: httpx.ConnectError | None = None
        for address in addresses:
            request.url = request.url.copy_with(host=str(address))
            try:
                return super().handle_request(request)
            except httpx.ConnectError as exc:
                error = exc
        if error is None:
            raise netguard.UnresolvableHostError(f"host {host!r} has no address")
        raise error


class WebhookDispatcher:
    """Delivers results to webhooks on a small thread pool, with retries."""

    def __init__(
        self,
        sessions: SessionScope,
        *,
        allowlist: netguard.Allowlist | None = None,
        retry_delays_s: tuple[float, ...] = (1.0, 5.0, 25.0),
        timeout_s: float = 10.0,
    ):
        self._sessions = sessions
        self._delays = retry_delays_s
        self.allowlist = allowlist or netguard.Allowlist()
        self._client = httpx.Client(
            transport=PinnedTransport(self.allowlist),
            timeout=timeout_s,
            follow_redirects=False,
        )
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="distilgate-webhook")
        self._stopping = threading.Event()

    def notify(self, record: GateRecord) -> None:
        """Queue a delivery of ``record`` to every webhook of its project."""
        now = datetime.now(UTC)
        with self._sessions() as session:
            hooks = WebhookRepository(session).for_project(record.project)
            targets = [(hook.id, hook.url, active_secrets(hook, now)) for hook in hooks]
        if not targets:
            return
        payload = {"event": EVENT, "gate": _result_json(record)}
        body = json.dumps(payload, separators=(",", ":")).encode()
        for target in targets:
            self._pool.submit(self._deliver, *target, record.id, body)

    def shutdown(self) -> None:
        """Drop queued deliveries and end retry waits, so the process can exit."""
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(
        self,
        hook_id: str,
        url: str,
        secrets: tuple[str, ...],
        gate_id: str,
        body: bytes,
    ) -> None:
        for attempt in range(1, len(self._delays) + 2):
            if self._attempt(hook_id, url, secrets, gate_id, body, attempt):
                return
            if attempt > len(self._delays):
                break
            if self._stopping.wait(self._delays[attempt - 1]):
                logger.warning(
                    "webhook retries dropped at shutdown webhook_id=%s gate_id=%s",
                    hook_id,
                    gate_id,
                )
                return
        logger.warning("webhook gave up webhook_id=%s gate_id=%s", hook_id, gate_id)

    def _attempt(
        self,
        hook_id: str,
        url: str,
        secrets: tuple[str, ...],
        gate_id: str,
        body: bytes,
        attempt: int,
    ) -> bool:
        delivery_id = uuid.uuid4().hex
        status, error = self._post(url, secrets, delivery_id, body)
        delivered = status is not None and 200 <= status < 300
        self._record(hook_id, gate_id, delivery_id, attempt, status, error, delivered)
        if not delivered:
            logger.warning(
                "webhook delivery failed webhook_id=%s gate_id=%s delivery_id=%s "
                "attempt=%d status=%s error=%s",
                hook_id,
                gate_id,
                delivery_id,
                attempt,
                status,
                error,
            )
        return delivered

    def _post(
        self, url: str, secrets: tuple[str, ...], delivery_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "DistilGate-Webhook",
            "x-distilgate-event": EVENT,
            "x-distilgate-delivery": delivery_id,
            "x-distilgate-timestamp": str(timestamp),
            "x-distilgate-signature": signature_header(
                secrets, delivery_id, timestamp, body
            ),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, ValueError) as exc:
            # ValueError covers netguard's blocked and unresolvable hosts.
            return None, f"{type(exc).__name__}: {exc}"
        if response.is_redirect:
            location = response.headers.get("location", "")
            return response.status_code, f"redirect to {location[:200]!r} not followed"
        if response.is_success:
            return response.status_code, None
        error = f"HTTP {response.status_code}"
        text = response.text[:200].strip()
        return response.status_code, f"{error}: {text}" if text else error

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


def check_url(url: str, allowlist: netguard.Allowlist) -> None:
    """Reject a webhook URL that is not http(s) or reaches an internal host.

    A host name that does not resolve now is accepted: every delivery checks
    its addresses again.

    Raises:
        InputError: the URL is malformed, not http(s), or its host resolves to
            an address that is neither public nor allowlisted.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _bad_url(url, f"is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _bad_url(url, "must start with http:// or https:// and name a host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        netguard.checked_addresses(parsed.host, port, allowlist)
    except netguard.BlockedAddressError as exc:
        raise _bad_url(url, f"is rejected: {exc}") from exc
    except netguard.UnresolvableHostError:
        logger.info("webhook host does not resolve now host=%s", parsed.host)


def _bad_url(url: str, problem: str) -> InputError:
    return InputError(f"webhook url {url!r} {problem}", field="url", value=url)


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
