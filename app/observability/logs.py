"""Log set-up shared by ``distilgate serve``, the other commands and the workers.

Every line carries the ids of the request or job it belongs to, as plain text
or as one JSON object per line (``DISTILGATE_LOG_FORMAT=json``). A filter on
the handler redacts bearer tokens, ``dg_`` API tokens and the configured
secrets from every line, whatever logged them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.config import Settings
from app.observability import context

REDACTED = "[REDACTED]"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"

# Standard attributes of every LogRecord. Any other attribute came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message"}
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"',;&]+")
_AUTHORIZATION = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\b)[^\s\"',;&]+"
)
_API_TOKEN = re.compile(r"\bdg_[A-Za-z0-9_-]{8,}")


class RedactSecrets(logging.Filter):
    """Replace tokens and secrets in a record's message, extras and traceback."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        # Sorted by length, longest first, so a secret that contains another is
        # removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret and token pattern replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
        text = _AUTHORIZATION.sub(rf"\1{REDACTED}", text)
        return _API_TOKEN.sub(f"dg_{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            # Render the traceback now, so no formatter renders it unredacted.
            text = record.exc_text or logging.Formatter().formatException(
                record.exc_info
            )
            record.exc_info, record.exc_text = None, self.redact(text)
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class AddContext(logging.Filter):
    """Copy the request or job ids of the current context onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = context.current()
        for field in context.FIELDS:
            if getattr(record, field, None) is None:
                setattr(record, field, getattr(bound, field))
        return True


class ConsoleFormatter(logging.Formatter):
    """Readable lines, with the bound ids appended as ``key=value`` pairs."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{field}={value}"
            for field in context.FIELDS
            if (value := getattr(record, field, None)) is not None
        ]
        if not ids:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"


def json_formatter() -> logging.Formatter:
    """Return a formatter of one JSON object per line, with a UTC timestamp."""
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        # uvicorn repeats each of its messages with terminal colour codes.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configured_secrets(settings: Settings) -> list[str]:
    """Return the secret values from ``settings`` that must never be logged."""
    secrets = (settings.admin_token, settings.token, settings.internal_token)
    return [secret.get_secret_value() for secret in secrets if secret is not None]


def build_handler(
    settings: Settings, stream: TextIO, *, timestamps: bool = True
) -> logging.Handler:
    """Return a handler that writes redacted, id-tagged lines to ``stream``."""
    handler = logging.StreamHandler(stream)
    if settings.log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        prefix = "%(asctime)s " if timestamps else ""
        handler.setFormatter(ConsoleFormatter(prefix + CONSOLE_FORMAT))
    handler.addFilter(AddContext())
    handler.addFilter(RedactSecrets(configured_secrets(settings)))
    return handler


def configure_logging(
    settings: Settings, *, level: int | str | None = None, timestamps: bool = True
) -> None:
    """Send every log record to stderr in ``settings.log_format``.

    Replaces any handler already on the root logger. ``level`` defaults to
    ``settings.log_level``. ``timestamps`` adds the time to console lines, and
    JSON lines always carry it.
    """
    logging.basicConfig(
        level=level if level is not None else settings.log_level.upper(),
        handlers=[build_handler(settings, sys.stderr, timestamps=timestamps)],
        force=True,
    )
