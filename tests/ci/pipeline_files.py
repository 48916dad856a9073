"""Read the shell steps out of the Jenkinsfile and the GitHub action, to run them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "Jenkinsfile"
ACTION = ROOT / "ci" / "github" / "action.yml"

_STAGE = re.compile(r"stage\('([^']+)'\)")
_SH = re.compile(r"sh\s+(?:'''(.*?)'''|'((?:[^'\\]|\\.)*)')", re.DOTALL)
_ENV_LINE = re.compile(r"^\s*([A-Z_]+)\s*=\s*'([^']*)'\s*$", re.MULTILINE)
_PARAMETER = re.compile(r"string\(name:\s*'([A-Z_]+)',\s*defaultValue:\s*'([^']*)'")
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass(frozen=True)
class ShellStep:
    stage: str
    script: str


def jenkins_steps() -> list[ShellStep]:
    """Return every ``sh`` step of the Jenkinsfile with its stage, in order."""
    text = JENKINSFILE.read_text()
    stages = [(match.start(), match.group(1)) for match in _STAGE.finditer(text)]
    steps = []
    for match in _SH.finditer(text):
        stage = [name for start, name in stages if start < match.start()][-1]
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        steps.append(ShellStep(stage, groovy_unescape(raw)))
    return steps


def jenkins_environment() -> dict[str, str]:
    """Return the parameter defaults and the ``environment`` block's values."""
    text = JENKINSFILE.read_text()
    environment = text[text.index("environment {") : text.index("options {")]
    values = dict(_PARAMETER.findall(text))
    values.update(_ENV_LINE.findall(environment))
    return values


def groovy_unescape(text: str) -> str:
    """Apply Groovy's escapes of a single-quoted string: ``\\\\``, ``\\'`` and
    a backslash before a newline, which joins the lines."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following == "\n":
                index += 2
                continue
            if following in "\\'":
                out.append(following)
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def action() -> dict[str, Any]:
    return dict(yaml.safe_load(ACTION.read_text()))


def substitute(value: str, context: dict[str, str]) -> str:
    """Replace ``${{ name }}`` expressions by their values in ``context``."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression not in context:
            raise KeyError(f"no value for the expression {expression!r}")
        return context[expression]

    return _EXPRESSION.sub(lookup, str(value))
