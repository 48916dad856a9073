"""Tokens: stored as hashes, never in query strings, never in the log."""

import hashlib

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.helpers import only_error
from tests.security.helpers import ADMIN, bearer
from tests.servers import live_server

pytestmark = pytest.mark.slow

QUERY_NAMES = ["token", "access_token", "api_key", "Access_Token"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def secured(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"tokens-{request.param}")
    with live_server(request.param, root, {"DISTILGATE_ADMIN_TOKEN": ADMIN}) as live:
        yield live


def make_token(server, scopes=("read",), projects=("*",)):
    response = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "sec", "scopes": list(scopes), "projects": list(projects)},
        headers=bearer(ADMIN),
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("name", QUERY_NAMES)
def test_token_in_query_is_400(secured, name):
    secret = make_token(secured)["token"]
    response = httpx.get(f"{secured.url}/api/v1/gates", params={name: secret})
    error = only_error(response)
    assert response.status_code == 400
    assert error["type"] == "token_in_query"
    assert error["loc"] == ["query", name]
    assert "'Authorization: Bearer <token>' header" in error["msg"]
    assert secret not in response.text


def test_query_token_beside_header_is_400(secured):
    secret = make_token(secured)["token"]
    response = httpx.get(
        f"{secured.url}/api/v1/gates",
        params={"api_key": secret},
        headers=bearer(secret),
    )
    assert response.status_code == 400
    assert only_error(response)["loc"] == ["query", "api_key"]


def test_token_in_query_never_reaches_the_log(secured):
    secret = make_token(secured)["token"]
    for name in ("token", "access_token", "api_key"):
        httpx.get(f"{secured.url}/api/v1/gates?{name}={secret}&limit=1")
    log = secured.log_path.read_text()
    assert secret not in log
    assert "token=***" in log


def test_tokens_are_stored_as_hashes(secured):
    created = make_token(secured)
    engine = create_engine(secured.env["DISTILGATE_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT * FROM api_tokens WHERE id = :id"), {"id": created["id"]}
            ).mappings()
            row = dict(next(iter(rows)))
    finally:
        engine.dispose()
    secret = created["token"]
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:10] == created["prefix"]
    assert all(secret not in str(value) for value in row.values())


def test_valid_token_still_authenticates(secured):
    secret = make_token(secured)["token"]
    response = httpx.get(f"{secured.url}/api/v1/gates", headers=bearer(secret))
    assert response.status_code == 200
