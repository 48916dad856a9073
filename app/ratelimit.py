"""Sliding-window rate limits kept in memory: per token and per client address.

NOTE: counts live in one process. Several API processes behind a load balancer
each allow the full rate, and a restart clears every count.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from app.errors import DistilGateError

WINDOW_S = 60.0
# Maximum number of keys tracked at once. Past it the least recently used key
# is dropped, so a flood of client addresses cannot grow memory without bound.
MAX_KEYS = 10_000


class RateLimitedError(DistilGateError):
    """A client sent more requests than its limit allows; retry later."""

    status_code = 429
    error_type = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, field: str):
        super().__init__(message, field=field, location="header")
        self.retry_after_s = retry_after_s


class SlidingWindow:
    """Event counts per key over the last ``window_s`` seconds."""

    def __init__(
        self,
        limit: int,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def retry_after(self, key: str) -> int | None:
        """Return seconds until ``key`` is under its limit, or None if it is."""
        if not self.enabled:
            return None
        with self._lock:
            events = self._fresh(key, self._clock())
            if len(events) < self.limit:
                return None
            return max(1, math.ceil(events[0] + self.window_s - self._clock()))

    def record(self, key: str) -> None:
        """Count one event for ``key`` now."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            self._fresh(key, now).append(now)

    def hit(self, key: str) -> int | None:
        """Count one event unless ``key`` is at its limit; return the wait if so."""
        if not self.enabled:
            return None
        with self._lock:
            now = self._clock()
            events = self._fresh(key, now)
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.window_s - now))
            events.append(now)
            return None

    def _fresh(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque()
            if len(self._events) > MAX_KEYS:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events


class RateLimits:
    """The service's limits: submissions per caller, auth failures per address."""

    def __init__(self, submissions_per_minute: int, auth_failures_per_minute: int):
        self.submissions = SlidingWindow(submissions_per_minute)
        self.auth_failures = SlidingWindow(auth_failures_per_minute)

    def check_submission(self, key: str) -> None:
        """Count a submission by ``key``.

        Raises:
            RateLimitedError: ``key`` already made its limit of submissions in
                the last minute.
        """
        wait = self.submissions.hit(key)
        if wait is not None:
            raise RateLimitedError(
                f"too many gate submissions: the limit is "
                f"{self.submissions.limit} per minute per token; retry in {wait} "
                "s, or ask an admin to raise DISTILGATE_RATE_LIMIT_PER_MINUTE",
                retry_after_s=wait,
                field="Authorization",
            )

    def check_auth_allowed(self, client: str) -> None:
        """Raise RateLimitedError while ``client`` is over its failure limit."""
        wait = self.auth_failures.retry_after(client)
        if wait is not None:
            raise RateLimitedError(
                f"too many failed authentications from {client}: the limit is "
                f"{self.auth_failures.limit} per minute; retry in {wait} s with "
                "a valid token in 'Authorization: Bearer <token>'",
                retry_after_s=wait,
                field="Authorization",
            )
