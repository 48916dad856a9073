"""Read a zip archive of PNG and JPEG images into a table of image metadata.

Each image becomes one row: ``path`` (the member name), ``folder`` (set by the
caller from the path, see ``folders``), ``width``, ``height``, ``format``,
``blur`` (variance of the Laplacian of the grayscale image) and ``sha256`` (of
the file bytes). Alongside the table come each image's 64-bit perceptual hash
and a feature vector: the hash bits and a 16x16 grayscale thumbnail, each
scaled to unit length.

An image that cannot be decoded (corrupt, truncated, encrypted, not PNG or
JPEG, or more pixels than ``MAX_PIXELS``) stays in the table with missing
metadata and its reason, so the gate lists it as an invalid row.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from app.errors import InputError
from app.evaluation.archives import (
    DEFAULT_LIMITS,
    Limits,
    Member,
    Skipped,
    read_members,
)
from app.evaluation.numpy_files import error_summary, upload_name

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = frozenset({"PNG", "JPEG"})
# Larger images are rejected as decompression bombs. 50 million pixels admits
# an 8K (7680x4320) screenshot.
MAX_PIXELS = 50_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
HASH_BITS = 64
THUMBNAIL_SIDE = 16
VECTOR_WIDTH = HASH_BITS + THUMBNAIL_SIDE**2
# The blur score is measured on a copy whose longer side is at most this many
# pixels, so it compares images of different sizes at a similar scale.
BLUR_SIDE = 1024
# Unreadable images logged one by one. Any more are counted in one line.
MAX_LOGGED = 10
_NUMBERS = ["width", "height", "blur"]
COLUMNS = ["path", "folder", "width", "height", "format", "blur", "sha256"]


@dataclass(frozen=True)
class ImageSet:
    """The images of one archive: metadata rows, hashes and feature vectors.

    Row ``i`` of ``frame``, ``phash`` and ``vectors`` describe the same image.
    Unreadable images have missing metadata, a ``phash`` of 0 and a zero vector.
    """

    frame: pd.DataFrame
    phash: np.ndarray
    vectors: np.ndarray
    # Rows whose image could not be decoded, with the reason.
    unreadable: dict[int, str]
    skipped: Skipped


@dataclass(frozen=True)
class _Decoded:
    width: int
    height: int
    format: str
    blur: float
    phash: np.uint64
    vector: np.ndarray


def is_image_name(name: str) -> bool:
    """Tell whether a member name has a PNG or JPEG suffix."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def read_images(
    path: Path, *, field: str, filename: str | None, limits: Limits = DEFAULT_LIMITS
) -> ImageSet:
    """Read every PNG and JPEG member of a zip archive.

    Raises:
        InputError: the archive is unreadable, has an unsafe member, or contains
            no PNG or JPEG file.
        PayloadTooLargeError: the archive exceeds ``limits``.
    """
    skipped = Skipped()
    members = read_members(
        path,
        field=field,
        filename=filename,
        accept=is_image_name,
        skipped=skipped,
        limits=limits,
    )
    rows: list[dict[str, object]] = []
    phashes: list[np.uint64] = []
    vectors: list[np.ndarray] = []
    unreadable: dict[int, str] = {}
    for member in members:
        decoded = decode(member)
        if isinstance(decoded, str):
            if len(unreadable) < MAX_LOGGED:
                logger.info(
                    "image_unreadable field=%s member=%s reason=%s",
                    field,
                    member.name,
                    decoded,
                )
            unreadable[len(rows)] = decoded
            rows.append(_row(member, None))
            phashes.append(np.uint64(0))
            vectors.append(np.zeros(VECTOR_WIDTH, dtype=np.float32))
            continue
        rows.append(_row(member, decoded))
        phashes.append(decoded.phash)
        vectors.append(decoded.vector)
    if not rows:
        raise InputError(
            f"{upload_name(field, filename)} contains no PNG or JPEG file "
            f"({skipped.total} other members skipped); put .png, .jpg or .jpeg "
            "files in the archive",
            field=field,
            value=filename,
        )
    if len(unreadable) > MAX_LOGGED:
        logger.info(
            "images_unreadable field=%s count=%d logged=%d",
            field,
            len(unreadable),
            MAX_LOGGED,
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[_NUMBERS] = frame[_NUMBERS].astype(np.float64)
    return ImageSet(
        frame=frame,
        phash=np.array(phashes, dtype=np.uint64),
        vectors=np.vstack(vectors),
        unreadable=unreadable,
        skipped=skipped,
    )


def folder_depth(paths: list[str]) -> int:
    """Return 1 when every path sits under one shared top directory, else 0.

    An archive made with ``zip -r shots.zip shots`` puts every file under
    ``shots/``. That directory carries no information about the images, so it
    is skipped.
    """
    parts = [PurePosixPath(path).parts for path in paths]
    tops = {p[0] for p in parts if len(p) > 1}
    return 1 if len(tops) == 1 and all(len(p) > 1 for p in parts) else 0


def folders(paths: list[str], depth: int) -> list[str]:
    """Return the directory ``depth`` levels down of each path, or ``""``."""
    parts = [PurePosixPath(path).parts for path in paths]
    return [p[depth] if len(p) > depth + 1 else "" for p in parts]


def decode(member: Member) -> _Decoded | str:
    """Decode and measure one image, or return why it cannot be read."""
    if member.encrypted:
        return "encrypted member; archives must not use a password"
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that, so the
        # warning is raised as an error too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(member.data)) as image:
                if image.format not in IMAGE_FORMATS:
                    return f"{image.format} image; only PNG and JPEG are read"
                image.load()
                return _measure(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            return f"decompression bomb: {error_summary(exc)}"
        except UnidentifiedImageError:
            return "not a readable PNG or JPEG image"
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            return f"corrupt image: {error_summary(exc)}"


def _measure(image: Image.Image) -> _Decoded:
    gray = image.convert("L")
    phash = imagehash.phash(gray, hash_size=8)
    bits = np.asarray(phash.hash, dtype=bool).ravel()
    packed = np.packbits(bits).view(">u8")[0]
    signs = np.where(bits, 1.0, -1.0) / np.sqrt(HASH_BITS)
    return _Decoded(
        width=image.width,
        height=image.height,
        format=str(image.format),
        blur=blur_score(gray),
        phash=np.uint64(packed),
        vector=np.concatenate([signs, _thumbnail(gray)]).astype(np.float32),
    )


def _thumbnail(gray: Image.Image) -> np.ndarray:
    """Return a standardised 16x16 thumbnail, flattened to unit length."""
    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    pixels = np.asarray(gray.resize(side, Image.Resampling.BOX), dtype=np.float64)
    centred = pixels.ravel() - pixels.mean()
    norm = float(np.linalg.norm(centred))
    # A flat image has no pattern to compare, so it encodes as zeros.
    scaled: np.ndarray = centred / norm if norm > 0 else centred
    return scaled


def blur_score(gray: Image.Image) -> float:
    """Measure sharpness: the variance of the Laplacian, on a 0-255 gray scale.

    Low scores mean few edges, as in a blurred or nearly blank image.
    """
    longer = max(gray.size)
    if longer > BLUR_SIDE:
        scale = BLUR_SIDE / longer
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    pixels = np.asarray(gray, dtype=np.float64)
    return float(ndimage.laplace(pixels).var())


def _row(member: Member, decoded: _Decoded | None) -> dict[str, object]:
    digest = hashlib.sha256(member.data).hexdigest()
    if decoded is None:
        values: dict[str, object] = dict.fromkeys(
            ("width", "height", "format", "blur"), None
        )
    else:
        values = {
            "width": decoded.width,
            "height": decoded.height,
            "format": decoded.format,
            "blur": decoded.blur,
        }
    return {"path": member.name, "folder": "", **values, "sha256": digest}
