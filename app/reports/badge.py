"""The latest verdict of a project as an SVG badge."""

from __future__ import annotations

from xml.sax.saxutils import escape as _escape

_COLOURS = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "error": "#6d4c41",
    "inconclusive": "#f9a825",
    "waived": "#757575",
    "unknown": "#9e9e9e",
}
_CHAR_WIDTH = 7


def escape(text: str) -> str:
    """Escape text for an SVG element or a double-quoted attribute."""
    return _escape(text, {'"': "&quot;"})


def render_badge(label: str, status: str | None) -> str:
    """Return an SVG badge reading ``label | status`` in the status colour."""
    text = status or "unknown"
    colour = _COLOURS.get(text, _COLOURS["unknown"])
    left = _CHAR_WIDTH * len(label) + 12
    right = _CHAR_WIDTH * len(text) + 12
    width = left + right
    label_x, text_x = left / 2, left + right / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
        f'role="img" aria-label="{escape(label)}: {escape(text)}">'
        f"<title>{escape(label)}: {escape(text)}</title>"
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,sans-serif" '
        'font-size="11">'
        f'<text x="{label_x}" y="14">{escape(label)}</text>'
        f'<text x="{text_x}" y="14">{escape(text)}</text>'
        "</g></svg>"
    )
