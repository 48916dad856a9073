"""Files the CLI writes for a result: the subset, JSON, JUnit and Markdown."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.errors import InputError


def write_output(path: Path, data: str | bytes, option: str) -> None:
    """Write ``data`` to ``path``, text as UTF-8, for the command-line ``option``."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    with _writing(path, option):
        path.write_bytes(content)


def append_output(path: Path, text: str, option: str) -> None:
    """Append ``text`` as UTF-8 to ``path`` for the command-line ``option``."""
    with _writing(path, option), path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def copy_output(source: Path, path: Path, option: str) -> None:
    """Copy the file ``source`` to ``path`` for the command-line ``option``."""
    with _writing(path, option):
        shutil.copyfile(source, path)


@contextmanager
def _writing(path: Path, option: str) -> Iterator[None]:
    """Create the folder of ``path``, and turn a failed write into an input error.

    The error names the option and the path, which shows the argument to change.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        raise InputError(
            f"cannot write {option} {str(path)!r}: {exc}; pass a path in a "
            "writable folder",
            field=option.lstrip("-"),
        ) from None
