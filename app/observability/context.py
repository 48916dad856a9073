"""Ids attached to every log line of a request or a job.

A request or a job binds one mutable ``LogContext`` in a context variable.
Threads started through ``run_in_threadpool`` or ``contextvars.copy_context``
see the same object, so an id bound in a worker thread (the new gate's id,
say) also appears on the request's later lines, such as the access log line.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
FIELDS = ("request_id", "gate_id", "project")


@dataclass
class LogContext:
    """Ids of the request or job that the current code runs for."""

    request_id: str | None = None
    gate_id: str | None = None
    project: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("log_context", default=None)


def current() -> LogContext:
    """Return the bound context, or an empty one outside any request or job."""
    return _current.get() or LogContext()


def bind(*, gate_id: str | None = None, project: str | None = None) -> None:
    """Attach a gate id and project to the bound context, if one is bound."""
    context = _current.get()
    if context is None:
        return
    if gate_id is not None:
        context.gate_id = gate_id
    if project is not None:
        context.project = project


def enter(context: LogContext) -> Token[LogContext | None]:
    """Bind ``context`` until ``leave`` is called with the returned token."""
    return _current.set(context)


def leave(token: Token[LogContext | None]) -> None:
    """Restore the context that was bound before ``enter`` returned ``token``."""
    _current.reset(token)


@contextmanager
def scoped(context: LogContext) -> Iterator[LogContext]:
    """Bind ``context`` for the duration of the block."""
    token = enter(context)
    try:
        yield context
    finally:
        leave(token)


def request_id_from(header: str | None) -> str:
    """Return ``header`` when it is a safe short id, else a new random id.

    Safe means 1-64 ASCII letters, digits, ``.``, ``_``, ``:`` or ``-``,
    starting with a letter or digit, so it cannot break a log line or header.
    """
    if header is not None and REQUEST_ID_PATTERN.fullmatch(header):
        return header
    return uuid.uuid4().hex
