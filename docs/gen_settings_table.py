"""Write the table of every DistilGate setting into docs/deploy.md.

The table is generated from the fields of ``app.config.Settings``: the
environment variable, its type, its default and the field's description. It
sits between the two marker comments in docs/deploy.md.

    .venv/bin/python docs/gen_settings_table.py          # rewrite the table
    .venv/bin/python docs/gen_settings_table.py --check  # exit 1 when stale
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
START = "<!-- settings-table:start (docs/gen_settings_table.py writes this) -->"
END = "<!-- settings-table:end -->"
PREFIX = "DISTILGATE_"


def render_table() -> str:
    """Return the Markdown table of every Settings field, in declaration order."""
    lines = [
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(
            f"| `{PREFIX}{name.upper()}` | {_type_name(field.annotation)} "
            f"| {_default(field)} | {_cell(field.description or '')} |"
        )
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in annotation.__args__)
    if origin in (typing.Union, types.UnionType):
        names = [
            _type_name(argument)
            for argument in typing.get_args(annotation)
            if argument is not type(None)
        ]
        return " or ".join(names)
    if origin in (list, tuple, set, frozenset):
        items = typing.get_args(annotation)[:1]
        return f"list of {_type_name(items[0])}" if items else "list"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    names = {
        bool: "bool",
        int: "integer",
        float: "number",
        str: "text",
        Path: "path",
        SecretStr: "secret",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == []:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def replace_table(document: str, table: str) -> str:
    """Return ``document`` with the text between the markers set to ``table``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DEPLOY_DOC} needs the lines {START!r} and {END!r}")
    return document[: start + len(START)] + "\n\n" + table + "\n\n" + document[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the table in docs/deploy.md is out of date",
    )
    args = parser.parse_args()
    document = DEPLOY_DOC.read_text(encoding="utf-8")
    updated = replace_table(document, render_table())
    if args.check:
        if updated != document:
            print(
                "docs/deploy.md: the settings table is out of date; run "
                ".venv/bin/python docs/gen_settings_table.py",
                file=sys.stderr,
            )
            return 1
        return 0
    DEPLOY_DOC.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
