"""Admin routes: API tokens and webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app import admin
from app.api.deps import Admin, RuntimeDep, reject_unknown_query
from app.schemas import (
    DeliveryOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    WebhookIn,
    WebhookOut,
    WebhookSecretIn,
)

router = APIRouter(
    prefix="/api/v1",
    tags=["admin"],
    dependencies=[Depends(reject_unknown_query)],
)


@router.post("/tokens", status_code=201)
def post_token(runtime: RuntimeDep, caller: Admin, body: TokenIn) -> TokenCreated:
    """Create an API token; its secret is in this response only."""
    caller.require_all_projects("creating tokens")
    return admin.create_token(runtime, body)


@router.get("/tokens")
def get_tokens(runtime: RuntimeDep, caller: Admin) -> list[TokenOut]:
    """List API tokens without their secrets."""
    caller.require_all_projects("listing tokens")
    return admin.list_tokens(runtime)


@router.delete("/tokens/{token_id}")
def delete_token(runtime: RuntimeDep, caller: Admin, token_id: str) -> TokenOut:
    """Revoke an API token."""
    caller.require_all_projects("revoking tokens")
    return admin.revoke_token(runtime, token_id)


@router.post("/webhooks", status_code=201)
def post_webhook(runtime: RuntimeDep, caller: Admin, body: WebhookIn) -> WebhookOut:
    """Register a webhook called with every terminal result of its projects."""
    return admin.create_webhook(runtime, body, caller)


@router.post("/webhooks/{webhook_id}/secret")
def post_webhook_secret(
    runtime: RuntimeDep, caller: Admin, webhook_id: str, body: WebhookSecretIn
) -> WebhookOut:
    """Rotate a webhook's secret; the old one keeps signing for `previous_valid_s`."""
    return admin.rotate_webhook_secret(runtime, webhook_id, body, caller)


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(runtime: RuntimeDep, caller: Admin, webhook_id: str) -> Response:
    """Delete a webhook and its delivery history."""
    admin.delete_webhook(runtime, webhook_id, caller)
    return Response(status_code=204)


@router.get("/webhooks")
def get_webhooks(runtime: RuntimeDep, caller: Admin) -> list[WebhookOut]:
    """List webhooks without their secrets."""
    return admin.list_webhooks(runtime, caller)


@router.get("/webhooks/{webhook_id}/deliveries")
def get_deliveries(
    runtime: RuntimeDep,
    caller: Admin,
    webhook_id: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryOut]:
    """List a webhook's delivery attempts, newest first."""
    return admin.webhook_deliveries(runtime, webhook_id, caller, limit=limit)
