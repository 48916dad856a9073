"""Tests for decoding image archives into metadata rows, hashes and vectors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.errors import InputError
from app.evaluation.archives import Member
from app.evaluation.images import (
    MAX_PIXELS,
    VECTOR_WIDTH,
    decode,
    folder_depth,
    folders,
    read_images,
)
from tests.evaluation.image_fixtures import (
    blurred,
    bomb_png,
    encode,
    screenshot,
    shifted,
    write_zip,
)


def hamming(first: np.uint64, second: np.uint64) -> int:
    return int(np.bitwise_count(np.uint64(first) ^ np.uint64(second)))


def test_read_images_metadata_rows(tmp_path: Path) -> None:
    image = screenshot("login", 0)
    path = write_zip(
        tmp_path / "shots.zip",
        [
            ("login/a.png", encode(image)),
            ("login/b.jpg", encode(image, "JPEG")),
        ],
    )
    images = read_images(path, field="original", filename="shots.zip")
    frame = images.frame
    assert list(frame.columns) == [
        "path",
        "folder",
        "width",
        "height",
        "format",
        "blur",
        "sha256",
    ]
    assert list(frame["path"]) == ["login/a.png", "login/b.jpg"]
    assert list(frame["format"]) == ["PNG", "JPEG"]
    assert list(frame["width"]) == [160.0, 160.0]
    assert list(frame["height"]) == [120.0, 120.0]
    assert (frame["blur"] > 0).all()
    assert frame["sha256"].str.len().tolist() == [64, 64]
    assert images.vectors.shape == (2, VECTOR_WIDTH)
    assert images.vectors.dtype == np.float32
    assert images.unreadable == {}


def test_read_images_vectors_unit_length_blocks(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "one.zip", [("a.png", encode(screenshot("login", 3)))])
    vector = read_images(path, field="original", filename=None).vectors[0]
    assert float(np.linalg.norm(vector[:64])) == pytest.approx(1.0, abs=1e-5)
    assert float(np.linalg.norm(vector[64:])) == pytest.approx(1.0, abs=1e-5)


def test_read_images_near_duplicates_close_hashes(tmp_path: Path) -> None:
    image = screenshot("settings", 2)
    path = write_zip(
        tmp_path / "near.zip",
        [
            ("a.png", encode(image)),
            ("shifted.png", encode(shifted(image))),
            ("recoded.jpg", encode(image, "JPEG", quality=70)),
            ("other.png", encode(screenshot("settings", 3))),
        ],
    )
    phash = read_images(path, field="original", filename=None).phash
    assert hamming(phash[0], phash[1]) <= 8
    assert hamming(phash[0], phash[2]) <= 8
    assert hamming(phash[0], phash[3]) > 8


def test_read_images_blur_lowers_score(tmp_path: Path) -> None:
    image = screenshot("profile", 1)
    path = write_zip(
        tmp_path / "blur.zip",
        [("sharp.png", encode(image)), ("blurred.png", encode(blurred(image)))],
    )
    scores = read_images(path, field="original", filename=None).frame["blur"]
    assert scores[1] < scores[0] / 100


def test_read_images_corrupt_and_bomb_are_rows(tmp_path: Path) -> None:
    good = encode(screenshot("login", 0))
    path = write_zip(
        tmp_path / "mixed.zip",
        [
            ("good.png", good),
            ("truncated.png", good[: len(good) // 2]),
            ("text.png", b"not an image at all"),
            ("bomb.png", bomb_png()),
        ],
    )
    images = read_images(path, field="original", filename=None)
    assert len(images.frame) == 4
    assert set(images.unreadable) == {1, 2, 3}
    assert images.unreadable[1].startswith("corrupt image: ")
    assert images.unreadable[2] == "not a readable PNG or JPEG image"
    assert images.unreadable[3].startswith("decompression bomb: ")
    assert images.frame["width"].isna().tolist() == [False, True, True, True]
    assert not images.vectors[1:].any()


def test_decode_bomb_between_limit_and_twice_limit() -> None:
    # Pillow only warns in this range; the reader treats it as a bomb as well.
    side = int(np.sqrt(MAX_PIXELS * 1.5))
    reason = decode(Member("big.png", bomb_png(side, side)))
    assert isinstance(reason, str)
    assert reason.startswith("decompression bomb: ")


def test_decode_gif_named_png_unreadable() -> None:
    gif = encode(screenshot("login", 0), "GIF")
    assert decode(Member("fake.png", gif)) == "GIF image; only PNG and JPEG are read"


def test_decode_encrypted_member() -> None:
    reason = decode(Member("locked.png", b"", encrypted=True))
    assert reason == "encrypted member; archives must not use a password"


def test_read_images_junk_skipped_and_counted(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "junk.zip",
        [
            ("a.png", encode(screenshot("login", 0))),
            ("__MACOSX/._a.png", b"junk"),
            (".DS_Store", b"junk"),
            ("readme.txt", b"notes"),
        ],
    )
    images = read_images(path, field="original", filename=None)
    assert len(images.frame) == 1
    assert images.skipped.total == 3


def test_read_images_without_images(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "none.zip", [("readme.txt", b"notes")])
    with pytest.raises(InputError) as raised:
        read_images(path, field="subset", filename="none.zip")
    assert raised.value.message == (
        "subset 'none.zip' contains no PNG or JPEG file (1 other members skipped); "
        "put .png, .jpg or .jpeg files in the archive"
    )


def test_read_images_corrupt_member_data(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "crc.zip", [("a.png", b"abcdefgh" * 100)])
    content = bytearray(path.read_bytes())
    # Flip a byte of the stored member data so its CRC no longer matches.
    start = content.index(b"abcdefgh")
    content[start] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(InputError, match="member 'a.png' could not be decompressed"):
        read_images(path, field="original", filename=None)


@pytest.mark.parametrize(
    ("paths", "depth", "expected"),
    [
        (["shots/login/a.png", "shots/search/b.png"], 1, ["login", "search"]),
        (["login/a.png", "search/b.png"], 0, ["login", "search"]),
        (["login/a.png", "top.png"], 0, ["login", ""]),
        (["shots/a.png", "shots/b.png"], 1, ["", ""]),
    ],
)
def test_folders_below_shared_top(
    paths: list[str], depth: int, expected: list[str]
) -> None:
    assert folder_depth(paths) == depth
    assert folders(paths, depth) == expected


def test_read_images_stored_members_only_in_memory(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "a.zip", [("deep/er/a.png", encode(screenshot("login", 0)))]
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    read_images(path, field="original", filename=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["deep/er/a.png"]
