"""JSON and console log lines: bound ids, and secrets redacted from every part."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.observability import context
from app.observability.logs import REDACTED, build_handler, configure_logging

ADMIN = "bootstrap-admin-secret-for-log-tests"
API_TOKEN = "dg_" + "Zx9" * 14 + "q"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.Handler]]]:
    """A logger of its own whose lines go to a string buffer."""
    logger = logging.getLogger("tests.observability.logs")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stream = io.StringIO()
    handlers: list[logging.Handler] = []
    yield logger, stream, handlers
    for handler in handlers:
        logger.removeHandler(handler)


def attach(logged, log_format: str) -> logging.Logger:
    logger, stream, handlers = logged
    settings = Settings(log_format=log_format, admin_token=ADMIN)
    handler = build_handler(settings, stream, timestamps=False)
    logger.addHandler(handler)
    handlers.append(handler)
    return logger


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_fields(logged):
    logger = attach(logged, "json")
    with context.scoped(context.LogContext(request_id="req-1")):
        context.bind(gate_id="abc123", project="shop")
        logger.info("gate stored kind=%s", "data")
    [line] = json_lines(logged[1])
    assert line["message"] == "gate stored kind=data"
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.observability.logs"
    assert line["timestamp"].startswith("20")
    assert line["request_id"] == "req-1"
    assert line["gate_id"] == "abc123"
    assert line["project"] == "shop"


def test_json_line_outside_request(logged):
    logger = attach(logged, "json")
    logger.warning("sweep failed")
    [line] = json_lines(logged[1])
    assert line["request_id"] is None
    assert line["gate_id"] is None


def test_bind_outside_context_is_ignored(logged):
    logger = attach(logged, "json")
    context.bind(gate_id="stray")
    logger.info("after a stray bind")
    [line] = json_lines(logged[1])
    assert line["gate_id"] is None


def test_console_line_appends_ids(logged):
    logger = attach(logged, "console")
    with context.scoped(context.LogContext(request_id="req-2", gate_id="g1")):
        logger.info("job finished")
    text = logged[1].getvalue()
    assert text == (
        "INFO tests.observability.logs: job finished [request_id=req-2 gate_id=g1]\n"
    )


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("header Authorization: Bearer %s", "dg_live_token_value"),
        ("headers {'authorization': 'Bearer %s'}", "abc.def.ghi"),
        ("authorization=%s", "basic-credential-value"),
        ("query access=Bearer%%20%s", "urlencoded-token"),
        ("token %s was revoked", API_TOKEN),
        ("admin %s compared", ADMIN),
    ],
)
def test_secret_redacted_from_message(logged, message, secret):
    logger = attach(logged, "json")
    logger.info(message, secret)
    [line] = json_lines(logged[1])
    assert secret not in line["message"]
    assert REDACTED in line["message"]


def test_secret_redacted_from_traceback(logged):
    logger = attach(logged, "console")
    try:
        raise ValueError(f"bad header Bearer {API_TOKEN}")
    except ValueError:
        logger.exception("request failed")
    text = logged[1].getvalue()
    assert "Traceback" in text
    assert API_TOKEN not in text
    assert REDACTED in text


def test_secret_redacted_from_json_traceback(logged):
    logger = attach(logged, "json")
    try:
        raise ValueError(f"admin token {ADMIN}")
    except ValueError:
        logger.exception("request failed")
    [line] = json_lines(logged[1])
    assert "ValueError" in line["exc_info"]
    assert ADMIN not in line["exc_info"]


def test_secret_redacted_from_extra_field(logged):
    logger = attach(logged, "json")
    logger.info("call", extra={"authorization": f"Bearer {API_TOKEN}"})
    [line] = json_lines(logged[1])
    assert line["authorization"] == f"Bearer {REDACTED}"


def test_secret_redacted_from_request_id(logged):
    logger = attach(logged, "json")
    with context.scoped(context.LogContext(request_id=ADMIN)):
        logger.info("request")
    [line] = json_lines(logged[1])
    assert line["request_id"] == REDACTED


@pytest.mark.parametrize(
    "header",
    ["ci-42.step_7", "a", "0:1:2", "A" * 64],
)
def test_request_id_kept_when_safe(header):
    assert context.request_id_from(header) == header


@pytest.mark.parametrize(
    "header",
    [None, "", "has space", "line\nbreak", "-leading-dash", "A" * 65, "naïve", "a/b"],
)
def test_request_id_replaced_when_unsafe(header):
    generated = context.request_id_from(header)
    assert generated != header
    assert len(generated) == 32
    assert int(generated, 16) >= 0


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_replaces_root_handler(root_logging, capsys):
    configure_logging(Settings(log_format="json", log_level="debug"))
    root = logging.getLogger()
    [handler] = root.handlers
    assert root.level == logging.DEBUG
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr


def test_json_line_drops_colour_copy(logged):
    logger = attach(logged, "json")
    logger.info("Started server", extra={"color_message": "\x1b[36mStarted\x1b[0m"})
    [line] = json_lines(logged[1])
    assert "color_message" not in line
