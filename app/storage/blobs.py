"""Content-addressed artifact store on the local disk.

Each upload is streamed in chunks to a temporary file while its sha256 is
computed, synced, then renamed to ``<root>/<aa>/<bb>/<sha256>``, and the
directory is synced. The rename is atomic, so a crash leaves no partial blob
under a sha256 name (at most a temporary file in ``incoming``), and two
identical uploads end as one blob even when they race. A full disk raises
``InsufficientStorageError`` and keeps nothing of the upload.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import InsufficientStorageError, PayloadTooLargeError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Errors that mean the disk or the process's file-size limit has no room.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@dataclass(frozen=True)
class StoredBlob:
    """A blob in the store: its sha256, size in bytes and path on disk."""

    sha256: str
    size_bytes: int
    path: Path


class BlobStore:
    """Stores and finds uploads by the sha256 of their bytes."""

    def __init__(self, root: Path):
        self.root = root
        self._incoming = root / "incoming"
        self._incoming.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        """Return where the blob of ``sha256`` is stored.

        Raises:
            ValueError: ``sha256`` is not 64 lowercase hex digits. Checking it
                here keeps any stored or requested name inside the store.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, stream: BinaryIO, *, field: str, max_bytes: int) -> StoredBlob:
        """Copy ``stream`` into the store and return where it went.

        Raises:
            PayloadTooLargeError: the stream holds more than ``max_bytes``
                bytes. Nothing is stored in that case.
            InsufficientStorageError: the disk is full. Nothing is stored.
        """
        try:
            return self._put(stream, field, max_bytes)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            logger.error(
                "blob not stored field=%s root=%s error=%s", field, self.root, exc
            )
            raise _no_space(field) from None

    def _put(self, stream: BinaryIO, field: str, max_bytes: int) -> StoredBlob:
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(dir=self._incoming)
        temp_path = Path(temp_name)
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(field, max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return self._commit(temp_path, digest.hexdigest(), size)
        finally:
            temp_path.unlink(missing_ok=True)

    def _commit(self, temp_path: Path, sha256: str, size: int) -> StoredBlob:
        final = self.path_for(sha256)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            # os.replace is atomic: a racing identical upload replaces the blob
            # with the same bytes, and readers see one whole file or the other.
            os.replace(temp_path, final)
            _sync_directory(final.parent)
            logger.info("blob stored sha256=%s size_bytes=%d", sha256, size)
        return StoredBlob(sha256=sha256, size_bytes=size, path=final)


def _sync_directory(directory: Path) -> None:
    """Sync a directory so that a rename into it survives a power loss."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _no_space(field: str) -> InsufficientStorageError:
    return InsufficientStorageError(
        f"{field} could not be stored: the server's artifact store is out of disk "
        "space; retry later, or ask the operator to free space in "
        "DISTILGATE_DATA_DIR",
        field=field,
    )


def _too_large(field: str, max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"{field} is larger than the {max_bytes:,}-byte upload limit; send a smaller "
        "file or raise DISTILGATE_MAX_UPLOAD_BYTES on the server",
        field=field,
    )
