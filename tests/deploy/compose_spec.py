"""The DistilGate services of docker/compose.yaml, as commands and environments.

Tests that start the scaled set-up as local processes read the services from
here, so they run the commands and settings the compose file deploys:

    specs = distilgate_services(variables={"POSTGRES_PASSWORD": "pw", ...})
    specs["worker"].argv         # ["distilgate", "worker", "--concurrency", "2", ...]
    specs["worker"].environment  # {"DISTILGATE_EXECUTOR": "celery", ...}

Values are interpolated as Docker Compose does for ``${NAME}``,
``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?message}``,
``${NAME?message}`` and ``$$``. Host names in the values (``postgres``,
``redis``, ``api``) are those of the compose network; a local test replaces
them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PATH = ROOT / "docker" / "compose.yaml"
DOCKERFILE_PATH = ROOT / "docker" / "Dockerfile"
IMAGE_NAME = "distilgate"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class ComposeError(ValueError):
    """The compose file or the Dockerfile cannot be read as expected."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service that runs the DistilGate image."""

    name: str
    argv: list[str]
    environment: dict[str, str]
    replicas: int
    depends_on: dict[str, str]
    healthcheck: dict[str, Any] | None


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Substitute ``$NAME`` and ``${NAME...}`` in ``text`` as Docker Compose does.

    Raises:
        ComposeError: a ``${NAME:?message}`` variable is unset or empty.
    """

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        value = variables.get(name)
        operator, argument = match.group("op"), match.group("arg") or ""
        missing = value is None or (value == "" and operator in (":-", ":?"))
        if operator in (":-", "-") and missing:
            return argument
        if operator in (":?", "?") and missing:
            raise ComposeError(f"compose variable {name} is required: {argument}")
        return value or ""

    return _VARIABLE.sub(substitute, text)


def load_compose(path: Path = COMPOSE_PATH) -> dict[str, Any]:
    """Return the compose file as a mapping, with YAML merge keys applied."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ComposeError(f"{path} has no services mapping")
    return document


def dockerfile_stages(path: Path = DOCKERFILE_PATH) -> list[list[tuple[str, str]]]:
    """Return the (keyword, argument) instructions of each build stage, in order.

    Each stage starts with its FROM line; instructions before the first FROM
    (global ARGs) are left out.
    """
    stages: list[list[tuple[str, str]]] = []
    for keyword, argument in _instructions(path.read_text(encoding="utf-8")):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, argument))
    return stages


def read_dockerfile(path: Path = DOCKERFILE_PATH) -> dict[str, Any]:
    """Return the final stage's ENTRYPOINT and CMD (exec form) and HEALTHCHECK.

    Only the last FROM stage counts, as in the built image.
    """
    found: dict[str, Any] = {"ENTRYPOINT": None, "CMD": None, "HEALTHCHECK": None}
    for keyword, argument in dockerfile_stages(path)[-1]:
        if keyword in ("ENTRYPOINT", "CMD"):
            found[keyword] = _exec_form(keyword, argument)
        elif keyword == "HEALTHCHECK":
            _options, _, command = argument.partition("CMD ")
            found["HEALTHCHECK"] = _exec_form("HEALTHCHECK CMD", command)
    return found


def distilgate_services(
    variables: Mapping[str, str] | None = None, path: Path = COMPOSE_PATH
) -> dict[str, ServiceSpec]:
    """Return every service of the compose file that runs the DistilGate image.

    ``variables`` replaces the shell environment and docker/.env. A required
    variable missing from it raises ComposeError.
    """
    document = load_compose(path)
    dockerfile = read_dockerfile()
    specs = {}
    for name, service in document["services"].items():
        if not _runs_distilgate(service):
            continue
        specs[name] = _spec(name, service, dockerfile, variables or {})
    return specs


def _spec(
    name: str,
    service: dict[str, Any],
    dockerfile: dict[str, Any],
    variables: Mapping[str, str],
) -> ServiceSpec:
    entrypoint = service.get("entrypoint", dockerfile["ENTRYPOINT"])
    command = service.get("command", dockerfile["CMD"])
    if not isinstance(command, list) or not isinstance(entrypoint, list):
        raise ComposeError(
            f"service {name!r}: write entrypoint and command as lists (exec form)"
        )
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        depends_on = {dependency: "service_started" for dependency in depends_on}
    else:
        depends_on = {
            dependency: (options or {}).get("condition", "service_started")
            for dependency, options in depends_on.items()
        }
    return ServiceSpec(
        name=name,
        argv=[interpolate(str(part), variables) for part in entrypoint + command],
        environment=environment_of(service, variables),
        replicas=int((service.get("deploy") or {}).get("replicas", 1)),
        depends_on=depends_on,
        healthcheck=service.get("healthcheck"),
    )


def environment_of(
    service: dict[str, Any], variables: Mapping[str, str]
) -> dict[str, str]:
    """Return a service's environment with its values interpolated.

    Compose accepts a mapping or a list of ``NAME=value`` items.
    """
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.partition("=")[::2] for item in raw]
    else:
        pairs = [(key, "" if value is None else value) for key, value in raw.items()]
    return {key: interpolate(_compose_string(value), variables) for key, value in pairs}


def _compose_string(value: Any) -> str:
    if isinstance(value, bool):
        # YAML reads an unquoted true as a boolean, so the value would depend on
        # how Compose prints it. The file quotes booleans instead.
        raise ComposeError(f"quote the boolean {value!r} in the compose file")
    return str(value)


def _runs_distilgate(service: dict[str, Any]) -> bool:
    image = str(service.get("image", ""))
    return "build" in service or image.split(":")[0] == IMAGE_NAME


def _instructions(text: str) -> list[tuple[str, str]]:
    """Split a Dockerfile into (keyword, argument) pairs, joining continued lines."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, argument = stripped.partition(" ")
        pairs.append((keyword.upper(), argument.strip()))
    return pairs


def _exec_form(keyword: str, argument: str) -> list[str]:
    try:
        value = json.loads(argument)
    except json.JSONDecodeError:
        raise ComposeError(
            f"Dockerfile {keyword} {argument!r} is not in exec form "
            '(a JSON list such as ["distilgate"])'
        ) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ComposeError(f"Dockerfile {keyword} {argument!r} is not a list of text")
    return value
