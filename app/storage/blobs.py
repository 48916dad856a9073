"""Content-addressed artifact store on the local disk.

Each upload is streamed in chunks to a temporary file while its sha256 is
computed, synced, then renamed to ``<root>/<aa>/<bb>/<sha256>``. The rename is
atomic, so a crash leaves no partial blob under a sha256 name, and two identical
uploads end as one blob.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import PayloadTooLargeError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


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
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, stream: BinaryIO, *, field: str, max_bytes: int) -> StoredBlob:
        """Copy ``stream`` into the store and return where it went.

        Raises:
            PayloadTooLargeError: the stream holds more than ``max_bytes``
                bytes. Nothing is stored in that case.
        """
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
            os.replace(temp_path, final)
            logger.info("blob stored sha256=%s size_bytes=%d", sha256, size)
        return StoredBlob(sha256=sha256, size_bytes=size, path=final)


def _too_large(field: str, max_bytes: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"{field} is larger than the {max_bytes:,}-byte upload limit; send a smaller "
        "file or raise DISTILGATE_MAX_UPLOAD_BYTES on the server",
        field=field,
    )
