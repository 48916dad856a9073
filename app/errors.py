"""Errors raised by DistilGate code, each carrying the HTTP status it maps to.

The service renders every error in the shape FastAPI uses for request validation
errors: ``{"detail": [{"type", "loc", "msg", "input"}]}``. The CLI prints the
message and exits with code 2.
"""

from __future__ import annotations

import math
import re
from typing import Any

# C0 and C1 control characters and DEL: a raw NUL, newline or escape sequence
# from a request would otherwise reach the log as it is.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class DistilGateError(Exception):
    """Base class of every error DistilGate reports to a caller."""

    status_code = 400
    error_type = "distilgate_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        location: str = "body",
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value
        self.location = location

    def to_detail(self) -> dict[str, Any]:
        """Return the error as one FastAPI-style ``detail`` entry.

        ``location`` is where the field was sent: ``body``, ``query``, ``path``
        or ``header``.
        """
        loc = [self.location, *self.field.split(".")] if self.field else [self.location]
        return {
            "type": self.error_type,
            "loc": loc,
            "msg": printable(self.message),
            "input": _json_safe(self.value),
        }


class InputError(DistilGateError):
    """A request value is missing, malformed or out of range."""

    status_code = 422
    error_type = "invalid_input"


class PayloadTooLargeError(InputError):
    """An upload is larger than the server accepts."""

    status_code = 413
    error_type = "payload_too_large"


class UnsupportedFormatError(InputError):
    """An uploaded file is in a format DistilGate cannot read."""

    status_code = 415
    error_type = "unsupported_format"


class InsufficientStorageError(DistilGateError):
    """An upload the server had no disk space to store. Nothing of it is kept."""

    status_code = 507
    error_type = "insufficient_storage"


class ConflictError(DistilGateError):
    """A request conflicts with stored state, such as a reused idempotency key."""

    status_code = 409
    error_type = "conflict"


class NotFoundError(DistilGateError):
    """A stored object does not exist."""

    status_code = 404
    error_type = "not_found"


class ServiceUnavailableError(DistilGateError):
    """The service cannot take the request now; the client should retry later."""

    status_code = 503
    error_type = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EvaluationError(DistilGateError):
    """An evaluation could not finish, for example because a model crashed.

    The gate is stored with status ``error`` and this message as its reason.
    """

    status_code = 500
    error_type = "evaluation_error"


def printable(text: str) -> str:
    """Return ``text`` with lone surrogates escaped, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def loggable(text: str) -> str:
    """Return ``text`` with control characters and lone surrogates escaped.

    Use it on every request value that goes into a log line.
    """
    return _CONTROL_CHARS.sub(_escape_control, printable(text))


def _escape_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def json_safe(value: Any) -> Any:
    """Return ``value`` with non-finite floats and unencodable text made JSON-safe."""
    if isinstance(value, dict):
        return {printable(str(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return printable(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return printable(str(value))


def _json_safe(value: Any) -> Any:
    """Shorten a value so that an error body stays small and JSON-serialisable."""
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value[:20]]
    if value is None or isinstance(value, bool | int | float):
        return json_safe(value)
    text = printable(str(value))
    return text if len(text) <= 200 else text[:197] + "..."
