"""Screenshot-like PNG and JPEG images drawn with Pillow, and zip archives of them.

Each screen (folder) has its own header colour. Each image of a screen places
boxes, circles and a text line at seeded random positions, so images differ in
their perceptual hashes. Near-duplicates are shifted copies
and JPEG re-encodings; blurred copies go through a Gaussian blur.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

SCREENS = ("login", "settings", "profile", "search")
PER_SCREEN = 10
SIZE = (160, 120)
HEADERS = {
    "login": (40, 90, 200),
    "settings": (60, 160, 60),
    "profile": (180, 60, 60),
    "search": (120, 60, 160),
}


def screenshot(screen: str, index: int) -> Image.Image:
    """Draw one screen's screenshot, varied by ``index``."""
    seed = SCREENS.index(screen) * 1000 + index
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", SIZE, (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SIZE[0], 18), fill=HEADERS[screen])
    for _ in range(4):
        x, y = int(rng.integers(0, 120)), int(rng.integers(22, 90))
        w, h = int(rng.integers(15, 40)), int(rng.integers(8, 30))
        shade = tuple(int(v) for v in rng.integers(0, 200, 3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + w, y + h), fill=shade)
        else:
            draw.ellipse((x, y, x + w, y + h), fill=shade)
    text_x, text_y = int(rng.integers(2, 80)), int(rng.integers(95, 108))
    draw.text((text_x, text_y), f"{screen} {index}", fill=(0, 0, 0))
    return image


def encode(image: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def shifted(image: Image.Image, pixels: int = 2) -> Image.Image:
    """Return ``image`` moved right by ``pixels``, as a screenshot a bit off."""
    return ImageChops.offset(image, pixels, 0)


def blurred(image: Image.Image, radius: float = 3.0) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def write_zip(
    path: Path,
    members: Iterable[tuple[str, bytes]],
    *,
    symlinks: Iterable[tuple[str, str]] = (),
) -> Path:
    """Write a zip archive; ``symlinks`` adds (name, target) symbolic-link entries."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
        for name, target in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """Return a tiny PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # One compressed row of zeros: a few bytes that claim far more pixels.
    data = zlib.compress(b"\x00" * (width + 1))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


def screen_members(
    per_screen: int, screens: Iterable[str] = SCREENS
) -> list[tuple[str, bytes]]:
    """Return ``per_screen`` distinct PNG screenshots of each screen."""
    return [
        (f"{screen}/{screen}_{index:02d}.png", encode(screenshot(screen, index)))
        for screen in screens
        for index in range(per_screen)
    ]


def screen_archives(folder: Path, per_screen: int = PER_SCREEN) -> dict[str, Path]:
    """Write an original with duplicates, blur and broken files, and three subsets.

    ``good`` keeps every distinct screenshot, ``renamed`` is the same under other
    paths, and ``no_search`` drops the ``search`` screen.
    """
    distinct = screen_members(per_screen)
    redundant = []
    for screen in SCREENS:
        image = screenshot(screen, 0)
        redundant += [
            (f"{screen}/{screen}_copy.png", encode(image)),
            (f"{screen}/{screen}_shifted.png", encode(shifted(image))),
            (f"{screen}/{screen}_recoded.jpg", encode(image, "JPEG", quality=80)),
        ]
    # Blurred screens without a sharp twin, so they stay in the cleaned original.
    blurry = [
        (f"{screen}/{screen}_blurry.png", encode(blurred(screenshot(screen, 50), 4)))
        for screen in ("login", "search")
    ]
    broken = [("login/broken.png", b"\x89PNG broken"), ("login/bomb.png", bomb_png())]
    junk = [("__MACOSX/login/._login_00.png", b"junk"), ("login/.DS_Store", b"junk")]
    kept = distinct + blurry
    # Subset members renamed: matching goes by content, not by path.
    renamed = [(f"picked/{name.replace('/', '_')}", data) for name, data in kept]
    return {
        "original": write_zip(
            folder / "original.zip", distinct + redundant + blurry + broken + junk
        ),
        "good": write_zip(folder / "good.zip", kept),
        "renamed": write_zip(folder / "renamed.zip", renamed),
        "no_search": write_zip(
            folder / "no_search.zip",
            [m for m in kept if not m[0].startswith("search/")],
        ),
    }
