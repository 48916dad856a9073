"""``distilgate.toml``: a repository's gate settings, read by the CLI.

The file lives at the root of the repository that runs the CLI::

    [distilgate]
    server = "http://distilgate.internal:8000"
    project = "checkout"

    [policy]
    min_coverage = 0.97
    resources = ["size", "latency"]

Its ``[policy]`` table is sent with every gate as the request's policy, so it
overrides the project's stored policy except for keys the project locks. A
``--policy`` file overrides it key by key; ``--server`` and ``--project``
override the ``[distilgate]`` table.

``--policy`` takes a JSON object itself or the name of a JSON file: a value
that starts with ``{`` is JSON, anything else is a path.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import InputError

DEFAULT_NAME = "distilgate.toml"
_KNOWN_SECTIONS = {"distilgate", "policy"}
_KNOWN_SETTINGS = {"server", "project", "branch"}


@dataclass(frozen=True)
class RepoConfig:
    """Settings from ``distilgate.toml``; empty when there is no file."""

    settings: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)


def load_repo_config(path: Path | None) -> RepoConfig:
    """Read ``path``, or ``./distilgate.toml`` when it exists and path is None.

    Raises:
        InputError: the file is not valid TOML or has unknown tables or keys.
    """
    explicit = path is not None
    path = path or Path(DEFAULT_NAME)
    if not path.is_file():
        if explicit:
            raise InputError(
                f"--config {str(path)!r} is not a readable file",
                field="config",
                value=str(path),
            )
        return RepoConfig()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}", field="config") from None
    return _parse(document, path)


def _parse(document: dict[str, Any], path: Path) -> RepoConfig:
    unknown = set(document) - _KNOWN_SECTIONS
    if unknown:
        raise InputError(
            f"{path} has unknown tables {sorted(unknown)}; use [distilgate] "
            "and [policy]",
            field="config",
            value=sorted(unknown),
        )
    settings = document.get("distilgate", {})
    unknown = set(settings) - _KNOWN_SETTINGS
    if unknown:
        raise InputError(
            f"{path} [distilgate] has unknown keys {sorted(unknown)}; known keys: "
            f"{', '.join(sorted(_KNOWN_SETTINGS))}",
            field="config",
            value=sorted(unknown),
        )
    return RepoConfig(
        {k: str(v) for k, v in settings.items()}, document.get("policy", {})
    )


_EXAMPLE = "'{\"min_coverage\": 0.9}'"


def merged_policy(config: RepoConfig, policy: str | None) -> str | None:
    """Return the policy overrides to send: ``--policy`` keys over the config's.

    Raises:
        InputError: ``policy`` is neither a JSON object nor a readable JSON file.
    """
    overrides = policy_overrides(config, policy)
    return json.dumps(overrides) if overrides else None


def policy_overrides(config: RepoConfig, policy: str | None) -> dict[str, Any]:
    """Merge the config's ``[policy]`` table and ``--policy``, inline or a file."""
    overrides = dict(config.policy)
    if policy is None:
        return overrides
    if policy.lstrip().startswith("{"):
        return overrides | _read_inline_policy(policy)
    return overrides | _read_policy_file(Path(policy))


def _read_inline_policy(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--policy {text!r} is not valid JSON ({exc.msg} at column "
            f"{exc.colno}); write an object such as {_EXAMPLE} or give a file name",
            field="policy",
            value=text,
        ) from None
    if not isinstance(document, dict):
        raise InputError(
            f"--policy {text!r} must be a JSON object of threshold overrides",
            field="policy",
            value=text,
        )
    return document


def _read_policy_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"--policy {str(path)!r} cannot be read: {exc}; give the name of a "
            f"JSON file or the JSON object itself, such as {_EXAMPLE}",
            field="policy",
            value=str(path),
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--policy {str(path)!r} is not valid JSON ({exc.msg} at line "
            f'{exc.lineno}); write an object such as {{"min_coverage": 0.9}}',
            field="policy",
            value=str(path),
        ) from None
    if not isinstance(document, dict):
        raise InputError(
            f"--policy {str(path)!r} must hold a JSON object of threshold overrides",
            field="policy",
            value=str(path),
        )
    return document
