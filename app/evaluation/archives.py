"""Read the members of an uploaded zip archive in memory, never onto disk paths.

Every member name is checked before anything is read: absolute names, ``..``
parts, backslash or drive prefixes and symbolic links are rejected with the
member named. Operating-system junk (``__MACOSX/``, ``._*``, ``.DS_Store``,
``Thumbs.db``, ``desktop.ini``) and directory entries are skipped and counted.
The member count and the total uncompressed size the archive declares are
capped before any member is read. ``zipfile`` stops reading a member at its
declared size, so the declared total bounds what is decompressed.
"""

from __future__ import annotations

import logging
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from app.errors import InputError, PayloadTooLargeError
from app.evaluation.numpy_files import error_summary, upload_name

logger = logging.getLogger(__name__)

MAX_MEMBERS = 20_000
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
MAX_LISTED = 10

# General-purpose flag bit 0 of a zip entry marks it as encrypted.
_ENCRYPTED = 0x1
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class Member:
    """A regular file of an archive: its name and its bytes.

    ``data`` is empty for an encrypted member, which cannot be read without a
    password.
    """

    name: str
    data: bytes
    encrypted: bool = False


@dataclass
class Skipped:
    """Members left out of an archive's rows, counted by reason."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, name: str, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < MAX_LISTED:
            self.examples.append(name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self) -> dict[str, object]:
        """Describe the skipped members as JSON-safe values for a result."""
        return {
            "skipped_members": self.total,
            "by_reason": dict(self.counts),
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class Limits:
    """Caps checked against an archive's central directory before reading it."""

    max_members: int = MAX_MEMBERS
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES


DEFAULT_LIMITS = Limits()


def read_members(
    path: Path,
    *,
    field: str,
    filename: str | None,
    accept: Callable[[str], bool],
    skipped: Skipped,
    limits: Limits | None = None,
) -> Iterator[Member]:
    """Yield the regular files of a zip archive whose names ``accept`` takes.

    Junk entries, directories and files ``accept`` rejects are counted in
    ``skipped`` instead. The checks of ``list_members`` run before the first
    member is read.

    Raises:
        InputError: as ``list_members``, or a member cannot be decompressed.
        PayloadTooLargeError: as ``list_members``.
    """
    name = upload_name(field, filename)
    with _open(path, field, filename) as archive:
        members = _checked(archive, limits or DEFAULT_LIMITS, field, name)
        for info in members:
            reason = skip_reason(info)
            if reason is None and not accept(info.filename):
                reason = "unsupported file type"
            if reason is not None:
                skipped.add(info.filename, reason)
                continue
            if info.flag_bits & _ENCRYPTED:
                logger.info(
                    "archive_member_encrypted field=%s member=%s", field, info.filename
                )
                yield Member(info.filename, b"", encrypted=True)
                continue
            yield Member(info.filename, _read(archive, info, field, name))


def list_members(
    path: Path, *, field: str, filename: str | None, limits: Limits | None = None
) -> list[zipfile.ZipInfo]:
    """Check an archive's central directory and return its entries, reading no data.

    Raises:
        InputError: the file is not a readable zip archive, or a member name is
            unsafe (absolute, with ``..``, a drive or a backslash) or a symbolic
            link.
        PayloadTooLargeError: the archive has more members, or declares more
            uncompressed bytes, than ``limits`` allows.
    """
    with _open(path, field, filename) as archive:
        name = upload_name(field, filename)
        return _checked(archive, limits or DEFAULT_LIMITS, field, name)


def _open(path: Path, field: str, filename: str | None) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise InputError(
            f"{upload_name(field, filename)} could not be read as a zip archive "
            f"({error_summary(exc)}); check that the upload is complete",
            field=field,
            value=filename,
        ) from None


def _checked(
    archive: zipfile.ZipFile, limits: Limits, field: str, name: str
) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    check_limits(members, limits, field, name)
    for info in members:
        check_member_name(info, field, name)
    return members


def check_limits(
    members: list[zipfile.ZipInfo], limits: Limits, field: str, name: str
) -> None:
    """Reject an archive whose central directory exceeds ``limits``."""
    if len(members) > limits.max_members:
        raise PayloadTooLargeError(
            f"{name} has {len(members):,} members, more than the "
            f"{limits.max_members:,} allowed; split the archive or send fewer files",
            field=field,
            value=len(members),
        )
    total = sum(info.file_size for info in members)
    if total > limits.max_uncompressed_bytes:
        raise PayloadTooLargeError(
            f"{name} declares {total:,} bytes uncompressed, more than the "
            f"{limits.max_uncompressed_bytes:,} allowed; send smaller or fewer files",
            field=field,
            value=total,
        )


def check_member_name(info: zipfile.ZipInfo, field: str, name: str) -> None:
    """Reject a member that could name a path outside the archive, or a link."""
    member = info.filename
    problem = None
    parts = member.replace("\\", "/").split("/")
    if member.startswith(("/", "\\")):
        problem = "is an absolute path"
    elif "\\" in member:
        problem = "contains a backslash"
    elif len(member) >= 2 and member[1] == ":":
        problem = "starts with a drive letter"
    elif ".." in parts:
        problem = "contains a '..' part"
    elif stat.S_ISLNK(info.external_attr >> 16):
        problem = "is a symbolic link"
    if problem is not None:
        raise InputError(
            f"{name} member {member!r} {problem}; archives may contain only "
            "regular files with relative paths inside the archive",
            field=field,
            value=member,
        )


def skip_reason(info: zipfile.ZipInfo) -> str | None:
    """Return why a member is not a data file (directory or junk), or None."""
    if info.is_dir():
        return "directory"
    path = PurePosixPath(info.filename)
    if path.parts and path.parts[0] == "__MACOSX":
        return "operating-system file"
    if path.name.startswith("._") or path.name.lower() in _JUNK_NAMES:
        return "operating-system file"
    return None


def _read(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, field: str, name: str
) -> bytes:
    try:
        with archive.open(info) as handle:
            return handle.read()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise InputError(
            f"{name} member {info.filename!r} could not be decompressed "
            f"({error_summary(exc)}); re-create the archive",
            field=field,
            value=info.filename,
        ) from None


def zip_folder(folder: Path, destination: Path) -> Path:
    """Write the regular files under ``folder`` to a new zip archive.

    Member names are relative to ``folder`` with ``/`` separators. Symbolic links
    are not followed, so the archive holds only files inside the folder.
    """
    files = []
    for root, _, names in os.walk(folder, followlinks=False):
        for name in names:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                files.append(path)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(folder).as_posix())
    return destination
