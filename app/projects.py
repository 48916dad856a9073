"""Project policies: stored thresholds that every gate of a project starts from.

The policy in force is the documented defaults, overridden by the project's
stored policy, overridden by the request's own ``policy``. Keys the project
locks may not be overridden by a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.errors import InputError
from app.policy import Policy, parse_policy
from app.storage.projects import ProjectRepository


@dataclass(frozen=True)
class ResolvedPolicy:
    """The policy a gate applies and the project policy version it came from."""

    policy: Policy
    version: int | None


def resolve_policy(
    repository: ProjectRepository, project: str, raw: str | Mapping[str, Any] | None
) -> ResolvedPolicy:
    """Merge the project's stored policy with a request's overrides.

    Raises:
        InputError: an override is invalid, or it changes a locked key.
    """
    overrides = parse_policy(dict(raw) if isinstance(raw, Mapping) else raw)
    requested = overrides.model_dump(mode="json", exclude_unset=True)
    stored = repository.current_policy(project)
    if stored is None:
        return ResolvedPolicy(overrides, None)
    for key, value in requested.items():
        if key in stored.locked and value != stored.policy.get(key):
            raise InputError(
                f"policy key {key!r} is locked by project {project!r} at "
                f"{stored.policy.get(key)!r}; remove it from the request or change "
                "the project policy",
                field=f"policy.{key}",
                value=value,
            )
    merged = parse_policy({**stored.policy, **requested})
    return ResolvedPolicy(merged, stored.version)


def store_policy(
    repository: ProjectRepository,
    project: str,
    raw: Mapping[str, Any],
    locked: list[str],
) -> tuple[Policy, int]:
    """Validate and store a new version of a project's policy.

    Raises:
        InputError: a key is unknown or out of range, or a locked key is not a
            policy key.
    """
    policy = parse_policy(dict(raw))
    unknown = [key for key in locked if key not in Policy.model_fields]
    if unknown:
        raise InputError(
            f"locked names unknown policy keys {unknown}; known keys: "
            f"{', '.join(Policy.model_fields)}",
            field="locked",
            value=unknown,
        )
    stored = policy.model_dump(mode="json", exclude_unset=True)
    record = repository.add_policy_version(
        project, stored, sorted(set(locked)), datetime.now(UTC)
    )
    return policy, record.version
