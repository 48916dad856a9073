"""Project policies, waivers, tokens and webhooks: the admin side of the service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app.auth import Principal, new_token
from app.errors import ConflictError, InputError, NotFoundError
from app.gates import validate_project
from app.policy import Policy
from app.projects import resolve_policy, store_policy
from app.runtime import Runtime
from app.schemas import (
    DeliveryOut,
    GateResult,
    ProjectPolicyIn,
    ProjectPolicyOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    WaiverIn,
    WebhookIn,
    WebhookOut,
    WebhookSecretIn,
)
from app.storage.models import Webhook
from app.storage.projects import ProjectRepository, TokenRepository, WebhookRepository
from app.webhooks import check_url, new_webhook

logger = logging.getLogger(__name__)

WAIVABLE = frozenset({"failed", "error", "inconclusive"})


def project_policy(runtime: Runtime, project: str) -> ProjectPolicyOut:
    """Return the project's stored policy and the thresholds in force."""
    with runtime.session() as session:
        repository = ProjectRepository(session)
        stored = repository.current_policy(project)
        effective = resolve_policy(repository, project, None).policy
        return ProjectPolicyOut(
            project=project,
            version=None if stored is None else stored.version,
            policy={} if stored is None else stored.policy,
            locked=[] if stored is None else stored.locked,
            effective=effective.model_dump(mode="json"),
        )


def put_project_policy(
    runtime: Runtime, project: str, body: ProjectPolicyIn
) -> ProjectPolicyOut:
    """Store a new version of the project's policy."""
    with runtime.session() as session:
        _, version = store_policy(
            ProjectRepository(session), project, body.policy, body.locked
        )
    logger.info("project policy stored project=%s version=%d", project, version)
    return project_policy(runtime, project)


def policy_schema() -> dict[str, Any]:
    """Return the JSON schema that every policy document is validated against."""
    return Policy.model_json_schema()


def waive(
    runtime: Runtime, gate_id: str, body: WaiverIn, principal: Principal
) -> GateResult:
    """Accept a failed gate until the waiver expires; it never becomes passed.

    Raises:
        InputError: the expiry is not in the future.
        ConflictError: the gate did not fail, so there is nothing to waive.
    """
    now = datetime.now(UTC)
    expires = (
        body.expires_at
        if body.expires_at.tzinfo
        else body.expires_at.replace(tzinfo=UTC)
    )
    if expires <= now:
        raise InputError(
            f"expires_at {body.expires_at.isoformat()} is not in the future; give "
            "a later expiry",
            field="expires_at",
            value=body.expires_at.isoformat(),
        )
    with runtime.scope() as service:
        record = service.find(gate_id, principal.projects)
        if record is None:
            raise NotFoundError(
                f"gate {gate_id!r} not found", field="gate_id", location="path"
            )
        if record.status not in WAIVABLE:
            raise ConflictError(
                f"gate {gate_id!r} is {record.status!r}; only failed, error or "
                "inconclusive gates can be waived",
                field="gate_id",
                value=record.status,
            )
        record.waiver = {
            "reason": body.reason,
            "expires_at": expires.isoformat(),
            "waived_by": principal.name,
            "waived_at": now.isoformat(),
            "original_status": record.status,
        }
        record.waived_until = expires
        record.status = "waived"
        logger.info("gate waived gate_id=%s by=%s", gate_id, principal.name)
        return GateResult.from_record(record)


def create_token(runtime: Runtime, body: TokenIn) -> TokenCreated:
    with runtime.session() as session:
        record, secret = new_token(
            TokenRepository(session), body.name, list(body.scopes), body.projects
        )
        return TokenCreated(**_token_fields(record), token=secret)


def list_tokens(runtime: Runtime) -> list[TokenOut]:
    with runtime.session() as session:
        return [TokenOut(**_token_fields(t)) for t in TokenRepository(session).all()]


def revoke_token(runtime: Runtime, token_id: str) -> TokenOut:
    with runtime.session() as session:
        record = TokenRepository(session).find(token_id)
        if record is None:
            raise NotFoundError(f"token {token_id!r} not found", field="token_id")
        record.revoked_at = record.revoked_at or datetime.now(UTC)
        logger.info("token revoked token_id=%s", token_id)
        return TokenOut(**_token_fields(record))


def _token_fields(record: Any) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "scopes": record.scopes,
        "projects": record.projects,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def create_webhook(
    runtime: Runtime, body: WebhookIn, principal: Principal
) -> WebhookOut:
    """Register a webhook for a public ``http`` or ``https`` URL.

    Raises:
        PermissionDeniedError: the caller may not use one of the projects.
        InputError: a project name is invalid, or the URL is not http(s) or its
            host is internal and not in ``webhook_allow_hosts``.
    """
    for index, project in enumerate(body.projects):
        if project == "*":
            principal.require_all_projects("a webhook for all projects")
        else:
            validate_project(project, field=f"projects.{index}")
            principal.require_project(project)
    check_url(body.url, runtime.webhooks.allowlist)
    with runtime.session() as session:
        hook = WebhookRepository(session).add(
            new_webhook(body.url, body.secret, body.projects)
        )
        return _webhook_out(hook)


def rotate_webhook_secret(
    runtime: Runtime, webhook_id: str, body: WebhookSecretIn, principal: Principal
) -> WebhookOut:
    """Replace a webhook's secret; the old one also signs until it expires."""
    now = datetime.now(UTC)
    with runtime.session() as session:
        hook = _visible_webhook(WebhookRepository(session), webhook_id, principal)
        hook.previous_secret = hook.secret
        hook.previous_secret_expires_at = now + timedelta(seconds=body.previous_valid_s)
        hook.secret = body.secret
        logger.info(
            "webhook secret rotated webhook_id=%s previous_valid_s=%d",
            webhook_id,
            body.previous_valid_s,
        )
        return _webhook_out(hook)


def delete_webhook(runtime: Runtime, webhook_id: str, principal: Principal) -> None:
    """Delete a webhook the caller may manage, with its delivery history.

    Raises:
        NotFoundError: no such webhook, or one with a project the caller may
            not use.
    """
    with runtime.session() as session:
        repository = WebhookRepository(session)
        hook = _visible_webhook(repository, webhook_id, principal)
        # NOTE: a delivery already being sent still tries to store its
        # attempt, which fails because the webhook row is gone.
        deliveries = repository.delete(hook)
    logger.info(
        "webhook deleted webhook_id=%s deliveries_deleted=%d", webhook_id, deliveries
    )


def list_webhooks(runtime: Runtime, principal: Principal) -> list[WebhookOut]:
    """List the webhooks whose projects the caller may all use."""
    with runtime.session() as session:
        return [
            _webhook_out(hook)
            for hook in WebhookRepository(session).all()
            if principal.may_see_all(hook.projects)
        ]


def webhook_deliveries(
    runtime: Runtime, webhook_id: str, principal: Principal, *, limit: int
) -> list[DeliveryOut]:
    with runtime.session() as session:
        repository = WebhookRepository(session)
        _visible_webhook(repository, webhook_id, principal)
        return [
            DeliveryOut(
                id=d.id,
                gate_id=d.gate_id,
                attempt=d.attempt,
                status_code=d.status_code,
                error=d.error,
                delivered=d.delivered,
                created_at=d.created_at,
            )
            for d in repository.deliveries(webhook_id, limit=limit)
        ]


def _visible_webhook(
    repository: WebhookRepository, webhook_id: str, principal: Principal
) -> Webhook:
    """Return a webhook the caller may manage; others are reported as missing."""
    hook = repository.find(webhook_id)
    if hook is None or not principal.may_see_all(hook.projects):
        raise NotFoundError(
            f"webhook {webhook_id!r} not found", field="webhook_id", location="path"
        )
    return hook


def _webhook_out(hook: Any) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        projects=hook.projects,
        active=hook.active,
        created_at=hook.created_at,
        previous_secret_expires_at=hook.previous_secret_expires_at,
    )
