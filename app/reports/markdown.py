"""A gate result as Markdown, for people and for CI job summaries.

Every value that may come from an upload (column values, file names, messages)
is escaped, so a scenario value cannot inject links, tables or HTML.
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import printable
from app.schemas import GateResult

# Characters that start emphasis, code, links, HTML or table cells.
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_STATUS_MARK = {
    "passed": "PASSED",
    "failed": "FAILED",
    "error": "ERROR",
    "inconclusive": "INCONCLUSIVE",
    "waived": "WAIVED",
    "queued": "QUEUED",
    "running": "RUNNING",
}


def escape(text: Any) -> str:
    """Escape Markdown, HTML, control characters and lone surrogates in ``text``.

    Newlines become spaces. Other control characters, such as the ESC that
    starts a terminal colour sequence, are written as ``\\xNN``.
    """
    plain = printable(str(text)).replace("\r", " ").replace("\n", " ")
    plain = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", plain)
    return _SPECIAL.sub(r"\\\1", plain)


def render_markdown(
    result: GateResult, *, max_bytes: int = 200_000, url: str | None = None
) -> str:
    """Return the Markdown report, cut to ``max_bytes`` with a note when longer."""
    sections = [
        _header(result, url),
        _checks(result),
        _comparison(result),
        _lost(result),
    ]
    text = "\n".join(section for section in sections if section)
    return _truncate(text, max_bytes, url)


def _header(result: GateResult, url: str | None) -> str:
    title = f"## DistilGate {result.kind} gate: {_STATUS_MARK[result.status]}"
    where = [f"project `{escape(result.project)}`"]
    if result.branch:
        where.append(f"branch `{escape(result.branch)}`")
    if result.commit:
        where.append(f"commit `{escape(result.commit)}`")
    lines = [title, "", ", ".join(where) + f", gate `{result.id}`"]
    if url:
        lines.append(f"[full result]({url})")
    if result.waiver is not None:
        waiver = result.waiver
        state = "active" if waiver.active else "expired"
        lines.append(
            f"\n**Waived** ({state}, until {waiver.expires_at.isoformat()}) by "
            f"{escape(waiver.waived_by)}: {escape(waiver.reason)}; original status "
            f"{waiver.original_status}"
        )
    if result.error:
        lines.append(f"\n**Error:** {escape(result.error)}")
    return "\n".join(lines) + "\n"


def _checks(result: GateResult) -> str:
    if not result.checks:
        return ""
    rows = ["| check | status | message |", "|---|---|---|"]
    for check in result.checks:
        name = escape(check.name) + (" (advisory)" if check.advisory else "")
        rows.append(f"| {name} | {check.status} | {escape(check.message)} |")
    return "\n".join(rows) + "\n"


def _comparison(result: GateResult) -> str:
    baseline = (result.comparison or {}).get("baseline") or {}
    deltas = baseline.get("deltas") or {}
    if not baseline.get("id") or not deltas:
        return ""
    rows = [
        f"Compared with the last passing result `{baseline['id']}`:",
        "",
        "| metric | delta |",
        "|---|---|",
    ]
    rows += [f"| {escape(name)} | {delta:+.6g} |" for name, delta in deltas.items()]
    return "\n".join(rows) + "\n"


def _lost(result: GateResult) -> str:
    missing = result.details.get("missing_scenarios") or []
    if not missing:
        return ""
    rows = [f"Scenarios the subset lost ({len(missing)}), rarest first:", ""]
    for entry in missing:
        values = ", ".join(
            f"{escape(k)}={escape(v)}" for k, v in entry.get("values", {}).items()
        )
        rows.append(f"- {values} ({entry.get('original_rows')} original rows)")
    return "\n".join(rows) + "\n"


def _truncate(text: str, max_bytes: int, url: str | None) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    note = "\n\n_Report truncated"
    note += f"; see the [full result]({url})._\n" if url else "._\n"
    budget = max(max_bytes - len(note.encode()), 0)
    cut = encoded[:budget].decode(errors="ignore")
    return cut[: cut.rfind("\n") + 1] + note
