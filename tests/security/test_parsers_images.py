"""Decompression-bomb images are listed as unreadable, never decoded.

A PNG of a few dozen bytes can declare billions of pixels. The image reader
must reject it from its header, keep reading the other images, and the live
server (SQLite, then PostgreSQL) must finish the gate with flat memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.evaluation.images import MAX_PIXELS, read_images
from tests.security.corpus import (
    image_zip,
    png_declaring,
    post_gate,
    resident_bytes,
    small_png,
)

RSS_GROWTH_LIMIT = 500 * 1024**2
# Past twice Pillow's limit it raises; between the limit and twice it only
# warns, which the reader must treat as an error too.
BOMBS = {
    "huge.png": (100_000, 100_000),
    "over_limit.png": (8_000, 8_000),
}


def bomb_archive() -> bytes:
    members = {name: png_declaring(*size) for name, size in BOMBS.items()}
    members |= {f"ok/{index}.png": small_png(index) for index in range(6)}
    return image_zip(members)


def test_png_bombs_unreadable(tmp_path: Path) -> None:
    assert MAX_PIXELS < 8_000 * 8_000
    path = tmp_path / "images.zip"
    path.write_bytes(bomb_archive())
    images = read_images(path, field="original", filename="images.zip")
    paths = images.frame["path"].tolist()
    unreadable = {paths[row]: reason for row, reason in images.unreadable.items()}
    assert sorted(unreadable) == sorted(BOMBS)
    assert all("decompression bomb" in reason for reason in unreadable.values())
    readable = images.frame.drop(index=list(images.unreadable))
    assert readable["width"].tolist() == [32.0] * 6


@pytest.mark.slow
def test_png_bombs_live_memory_flat(server) -> None:
    archive = bomb_archive()
    files = {"original": ("images.zip", archive), "subset": ("images.zip", archive)}
    before = resident_bytes(server.process.pid)
    response = post_gate(server.url, "data", files)
    growth = resident_bytes(server.process.pid) - before
    result = response.json()
    assert response.status_code == 200, result
    assert result["status"] in ("passed", "failed", "inconclusive")
    assert growth < RSS_GROWTH_LIMIT
