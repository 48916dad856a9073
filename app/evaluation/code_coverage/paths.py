"""Source file names: normalising them and pairing the files of two reports.

Reports name files in different ways: absolute or relative, with backslashes and
drive letters on Windows, relative to one of several source roots, or under a
checkout directory that differs between the two runs. The rules:

1. ``normalise_path``: backslashes become ``/``, a drive letter (``C:``) is
   dropped, ``.`` and empty segments are dropped, ``..`` removes the segment before
   it, and the result has no leading ``/``. ``C:\\src\\pkg\\mod.py`` and
   ``/src/pkg/./mod.py`` both become ``src/pkg/mod.py``.
2. ``strip_roots``: a name under one of the report's source roots (Cobertura's
   ``<source>`` elements) loses the longest such root.
3. ``pair_files``: files with the same name in both reports are paired. Each
   remaining file of the original is paired with the remaining file of the subset
   that shares the longest tail of path segments (at least the file name), when
   that file is the only best match in both directions. Removing the shared tail
   leaves a prefix rewrite, for example ``home/ci/a`` to ``build/b`` when the runs
   used different checkouts. Only pairs whose rewrite is the most common one are
   kept, so a lone file that merely shares its file name stays unpaired.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class FilePair:
    """One source file as each report names it; ``None`` where a report lacks it.

    ``key`` names the file in results: the common name of an exact pair, the shared
    tail of a pair matched by suffix, or the one report's name of an unpaired file.
    """

    key: str
    original: str | None
    subset: str | None


def normalise_path(raw: str) -> str:
    """Return ``raw`` with ``/`` separators and no drive, root, ``.`` or ``..``."""
    text = _DRIVE.sub("", raw.strip().replace("\\", "/"))
    segments: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == ".." and segments and segments[-1] != "..":
            segments.pop()
        else:
            segments.append(segment)
    return "/".join(segments)


def strip_roots(path: str, roots: Iterable[str]) -> str:
    """Remove the longest of ``roots`` (normalised names) that ``path`` lies under."""
    best = ""
    for root in roots:
        if root and len(root) > len(best) and path.startswith(root + "/"):
            best = root
    return path[len(best) + 1 :] if best else path


def pair_files(original: Collection[str], subset: Collection[str]) -> list[FilePair]:
    """Pair the files of two reports by the rules in the module documentation.

    Returns every file of either report once, original files first, each list sorted
    by name.
    """
    exact = set(original) & set(subset)
    by_suffix = _suffix_pairs(
        [name for name in original if name not in exact],
        [name for name in subset if name not in exact],
    )
    pairs = [FilePair(name, name, name) for name in sorted(exact)]
    paired_subset = set(exact)
    for name in sorted(set(original) - exact):
        match = by_suffix.get(name)
        if match is None:
            pairs.append(FilePair(name, name, None))
            continue
        pairs.append(FilePair(_shared_tail(name, match), name, match))
        paired_subset.add(match)
    pairs.extend(
        FilePair(name, None, name) for name in sorted(set(subset) - paired_subset)
    )
    return pairs


def _suffix_pairs(original: list[str], subset: list[str]) -> dict[str, str]:
    forward = _best_matches(original, subset)
    backward = _best_matches(subset, original)
    mutual = {o: s for o, s in forward.items() if backward.get(s) == o}
    rewrites = Counter(_rewrite(o, s) for o, s in mutual.items())
    if not rewrites:
        return {}
    top = max(rewrites.values())
    return {o: s for o, s in mutual.items() if rewrites[_rewrite(o, s)] == top}


def _best_matches(names: list[str], candidates: list[str]) -> dict[str, str]:
    """Map each name to the candidate sharing its longest tail, if only one does."""
    # Every tail of every candidate, mapped to that candidate, or to None when
    # several candidates end with it.
    by_tail: dict[str, str | None] = {}
    for candidate in candidates:
        segments = candidate.split("/")
        for count in range(1, len(segments) + 1):
            tail = "/".join(segments[-count:])
            by_tail[tail] = candidate if tail not in by_tail else None
    result = {}
    for name in names:
        segments = name.split("/")
        for count in range(len(segments), 0, -1):
            tail = "/".join(segments[-count:])
            if tail in by_tail:
                match = by_tail[tail]
                if match is not None:
                    result[name] = match
                break
    return result


def _tail_length(first: str, second: str) -> int:
    count = 0
    pairs = zip(reversed(first.split("/")), reversed(second.split("/")), strict=False)
    for a, b in pairs:
        if a != b:
            break
        count += 1
    return count


def _shared_tail(first: str, second: str) -> str:
    count = _tail_length(first, second)
    return "/".join(first.split("/")[-count:])


def _rewrite(original: str, subset: str) -> tuple[str, str]:
    tail = len(_shared_tail(original, subset))
    return original[: len(original) - tail], subset[: len(subset) - tail]
