"""Every route of the application has an entry in the scope table.

The scope table is ``ROUTES`` in tests/api/test_auth_api.py, whose tests call
each entry without a token, with a wrong one and with each scope. A new route
without an entry there, or here in ``UNSCOPED``, fails this test.
"""

import re

import pytest
from fastapi.routing import iter_route_contexts

from app.api.app import create_app
from tests.api.test_auth_api import ROUTES

# Routes that take no API token, and why.
UNSCOPED = {
    ("GET", "/healthz"): "liveness probe, returns only the version",
    ("GET", "/openapi.json"): "API description",
    ("GET", "/docs"): "API description",
    ("GET", "/docs/oauth2-redirect"): "API description",
    ("GET", "/redoc"): "API description",
    ("GET", "/api/v1/policy/schema"): "policy JSON schema, no stored data",
    (
        "GET",
        "/api/v1/internal/artifacts/{sha256}",
    ): "takes the worker token DISTILGATE_INTERNAL_TOKEN, not an API token",
}


def app_routes():
    """Return (method, path template) of every route, HEAD aside."""
    found = set()
    for context in iter_route_contexts(create_app().routes):
        for method in context.methods or ():
            if method != "HEAD":
                found.add((method, context.path))
    return sorted(found)


def template_pattern(path):
    """Return a regex matching concrete paths of a ``{param}`` template."""
    parts = re.split(r"\{[^/]+?\}", path)
    return re.compile("[^/]+".join(re.escape(part) for part in parts) + "$")


def scoped(method, path):
    pattern = template_pattern(path)
    concrete = [
        p.split("?")[0].format(gate="0" * 32) for m, p, _ in ROUTES if m == method
    ]
    return any(pattern.match(item) for item in concrete)


@pytest.mark.parametrize(("method", "path"), app_routes())
def test_route_has_scope_entry(method, path):
    assert scoped(method, path) or (method, path) in UNSCOPED, (
        f"{method} {path} has no entry in ROUTES of tests/api/test_auth_api.py "
        "(a request and the scope it needs) nor in UNSCOPED of "
        "tests/security/test_route_table.py (why it takes no token); add one"
    )


def test_table_lists_known_routes():
    routes = set(app_routes())
    for known in [
        ("POST", "/api/v1/gates/model"),
        ("GET", "/api/v1/gates/{gate_id}"),
        ("POST", "/api/v1/webhooks/{webhook_id}/secret"),
        ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ]:
        assert known in routes
