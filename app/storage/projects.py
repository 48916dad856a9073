"""Queries on project policies, tokens and webhooks. Functions here flush."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.storage.models import ApiToken, ProjectPolicy, Webhook, WebhookDelivery


class ProjectRepository:
    """Reads and writes project policies within one session."""

    def __init__(self, session: Session):
        self.session = session

    def current_policy(self, project: str) -> ProjectPolicy | None:
        query = (
            select(ProjectPolicy)
            .where(ProjectPolicy.project == project)
            .order_by(ProjectPolicy.version.desc())
        )
        return self.session.scalars(query).first()

    def add_policy_version(
        self, project: str, policy: dict[str, object], locked: list[str], now: datetime
    ) -> ProjectPolicy:
        latest = self.session.scalar(
            select(func.max(ProjectPolicy.version)).where(
                ProjectPolicy.project == project
            )
        )
        record = ProjectPolicy(
            project=project,
            version=(latest or 0) + 1,
            policy=policy,
            locked=locked,
            created_at=now,
        )
        self.session.add(record)
        self.session.flush()
        return record


class TokenRepository:
    """Reads and writes API tokens within one session."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def find_by_hash(self, token_hash: str) -> ApiToken | None:
        query = select(ApiToken).where(ApiToken.token_hash == token_hash)
        return self.session.scalars(query).first()

    def find(self, token_id: str) -> ApiToken | None:
        # PostgreSQL rejects NUL in a text parameter, and no stored id has one.
        if "\x00" in token_id:
            return None
        return self.session.get(ApiToken, token_id)

    def all(self) -> list[ApiToken]:
        return list(
            self.session.scalars(select(ApiToken).order_by(ApiToken.created_at))
        )


class WebhookRepository:
    """Reads and writes webhooks and their deliveries within one session."""

    def __init__(self, session: Session):
        self.session = session

    def add(self, webhook: Webhook) -> Webhook:
        self.session.add(webhook)
        self.session.flush()
        return webhook

    def find(self, webhook_id: str) -> Webhook | None:
        # PostgreSQL rejects NUL in a text parameter, and no stored id has one.
        if "\x00" in webhook_id:
            return None
        return self.session.get(Webhook, webhook_id)

    def all(self) -> list[Webhook]:
        return list(self.session.scalars(select(Webhook).order_by(Webhook.created_at)))

    def for_project(self, project: str) -> list[Webhook]:
        hooks = self.session.scalars(select(Webhook).where(Webhook.active.is_(True)))
        return [
            hook for hook in hooks if "*" in hook.projects or project in hook.projects
        ]

    def delete(self, webhook: Webhook) -> int:
        """Delete a webhook and its delivery history.

        Returns the number of deliveries deleted.
        """
        statement = delete(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook.id
        )
        result = self.session.execute(statement)
        self.session.delete(webhook)
        self.session.flush()
        return int(getattr(result, "rowcount", 0) or 0)

    def add_delivery(self, delivery: WebhookDelivery) -> None:
        self.session.add(delivery)
        self.session.flush()

    def deliveries(self, webhook_id: str, *, limit: int) -> list[WebhookDelivery]:
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc())
            .limit(limit)
        )
        return list(self.session.scalars(query))
