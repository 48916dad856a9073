"""Errors raised by DistilGate code, each carrying the HTTP status it maps to.

The service renders every error in the shape FastAPI uses for request validation
errors: ``{"detail": [{"type", "loc", "msg", "input"}]}``. The CLI prints the
message and exits with code 2.
"""

from __future__ import annotations

from typing import Any


class DistilGateError(Exception):
    """Base class of every error DistilGate reports to a caller."""

    status_code = 400
    error_type = "distilgate_error"

    def __init__(self, message: str, *, field: str | None = None, value: Any = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value

    def to_detail(self) -> dict[str, Any]:
        """Return the error as one FastAPI-style ``detail`` entry."""
        loc = ["body", *self.field.split(".")] if self.field else ["body"]
        return {
            "type": self.error_type,
            "loc": loc,
            "msg": self.message,
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


class NotFoundError(DistilGateError):
    """A stored object does not exist."""

    status_code = 404
    error_type = "not_found"


class EvaluationError(DistilGateError):
    """An evaluation could not finish, for example because a model crashed.

    The gate is stored with status ``error`` and this message as its reason.
    """

    status_code = 500
    error_type = "evaluation_error"


def _json_safe(value: Any) -> Any:
    """Shorten a value so that an error body stays small and JSON-serialisable."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value[:20]]
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."
