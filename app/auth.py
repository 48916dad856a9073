"""API tokens: creation, hashing and the scopes and projects a caller may use.

A token is ``dg_`` followed by 43 random URL-safe characters. Only its sha256
is stored, with a visible prefix to tell tokens apart in listings. The
bootstrap admin token comes from the environment and is compared in constant
time. Tokens are never logged, and a token sent in the query string is rejected
(``reject_query_tokens``) and masked in access logs (``QueryTokenFilter``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import DistilGateError
from app.storage.models import ApiToken
from app.storage.projects import TokenRepository

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "dg_"
VISIBLE_CHARS = 10
SCOPES = ("submit", "read", "admin")
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key"})
_QUERY_TOKEN = re.compile(r"(?i)\b(token|access_token|api_key)=[^&\s\"]*")


class AuthenticationError(DistilGateError):
    """The request has no valid token."""

    status_code = 401
    error_type = "unauthorized"


class TokenInQueryError(DistilGateError):
    """A token was sent as a query parameter, where logs and proxies keep it."""

    status_code = 400
    error_type = "token_in_query"


class PermissionDeniedError(DistilGateError):
    """The token is valid but lacks a scope or project."""

    status_code = 403
    error_type = "forbidden"


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name, scopes, projects (None: all) and token id.

    ``token_id`` is None for the bootstrap admin token and while tokens are off.
    """

    name: str
    scopes: frozenset[str]
    projects: frozenset[str] | None
    token_id: str | None = None

    def require(self, scope: str) -> None:
        """Raise PermissionDeniedError unless this caller has ``scope``."""
        if scope not in self.scopes and "admin" not in self.scopes:
            raise PermissionDeniedError(
                f"token {self.name!r} lacks the {scope!r} scope needed here "
                f"(it has {', '.join(sorted(self.scopes))}); ask an admin for a "
                f"token with {scope!r}",
                field="Authorization",
                location="header",
            )

    def require_all_projects(self, action: str) -> None:
        """Raise PermissionDeniedError unless this caller may use every project."""
        if self.projects is not None:
            raise PermissionDeniedError(
                f"token {self.name!r} is limited to projects "
                f"{', '.join(sorted(self.projects))}, but {action} needs a token "
                "for all projects ('*'); ask an admin for one",
                field="Authorization",
                location="header",
            )

    def may_see_all(self, projects: list[str]) -> bool:
        """Return whether this caller may use every project in ``projects``."""
        if self.projects is None:
            return True
        return "*" not in projects and set(projects) <= self.projects

    def require_project(self, project: str) -> None:
        """Raise PermissionDeniedError unless this caller may use ``project``."""
        if self.projects is not None and project not in self.projects:
            raise PermissionDeniedError(
                f"token {self.name!r} may not use project {project!r}; ask an "
                "admin for a token that includes it",
                field="project",
                value=project,
            )


ANONYMOUS_ADMIN = Principal("anonymous", frozenset(SCOPES), None)
PUBLIC_READER = Principal("public", frozenset({"read"}), None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(
    repository: TokenRepository, name: str, scopes: list[str], projects: list[str]
) -> tuple[ApiToken, str]:
    """Create and store a token; return the record and the secret, shown once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        id=uuid.uuid4().hex,
        name=name,
        prefix=secret[:VISIBLE_CHARS],
        token_hash=hash_token(secret),
        scopes=sorted(set(scopes)),
        projects=sorted(set(projects)),
        created_at=datetime.now(UTC),
    )
    repository.add(record)
    logger.info("token created token_id=%s prefix=%s", record.id, record.prefix)
    return record, secret


def authenticate(
    repository: TokenRepository, header: str | None, admin_token: str | None
) -> Principal:
    """Return the caller named by an ``Authorization: Bearer`` header.

    Raises:
        AuthenticationError: the header is missing, malformed, or names no
            active token.
    """
    token = _bearer(header)
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("bootstrap-admin", frozenset(SCOPES), None)
    record = repository.find_by_hash(hash_token(token))
    if record is None or record.revoked_at is not None:
        logger.info("authentication failed: unknown or revoked token")
        raise AuthenticationError(
            "the bearer token is not valid or was revoked; send a current token "
            "in 'Authorization: Bearer <token>'",
            field="Authorization",
            location="header",
        )
    projects = None if "*" in record.projects else frozenset(record.projects)
    return Principal(record.name, frozenset(record.scopes), projects, record.id)


def reject_query_tokens(names: Iterable[str]) -> None:
    """Raise TokenInQueryError when a query parameter looks like a token.

    The value is left out of the error, so it is neither logged nor echoed.
    """
    for name in names:
        if name.lower() in QUERY_TOKEN_NAMES:
            raise TokenInQueryError(
                f"query parameter {name!r} is not accepted, because URLs are "
                "kept in logs and proxies; send the token in the 'Authorization: "
                "Bearer <token>' header instead, and revoke this one",
                field=name,
                location="query",
            )


class QueryTokenFilter(logging.Filter):
    """Masks ``token=``, ``access_token=`` and ``api_key=`` values in log records.

    Attached to uvicorn's access logger, whose lines contain the query string.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY_TOKEN.sub(r"\1=***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _QUERY_TOKEN.sub(r"\1=***", record.msg)
        return True


def _bearer(header: str | None) -> str:
    if not header:
        raise AuthenticationError(
            "missing token; send 'Authorization: Bearer <token>'",
            field="Authorization",
            location="header",
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header must be 'Bearer <token>'",
            field="Authorization",
            location="header",
        )
    return token.strip()
