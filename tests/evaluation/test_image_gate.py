"""Tests for the data gate on zip archives of screenshots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.errors import InputError
from app.evaluation.image_gate import (
    NEAR_DUPLICATE_BITS,
    blur_threshold,
    check_image_archive,
    close_hash_pairs,
    evaluate_images,
    validate_image_request,
)
from app.evaluation.images import ImageSet, read_images
from app.policy import Policy
from app.results import Check, Evaluation
from tests.evaluation.image_fixtures import PER_SCREEN, screen_archives, write_zip


def check(evaluation: Evaluation, name: str) -> Check:
    return next(c for c in evaluation.checks if c.name == name)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return screen_archives(tmp_path_factory.mktemp("images"), PER_SCREEN)


def load(path: Path, field: str = "original") -> ImageSet:
    return read_images(path, field=field, filename=path.name)


def gate(archives: dict[str, Path], subset: str, **policy: object) -> Evaluation:
    return evaluate_images(
        load(archives["original"]),
        load(archives[subset], "subset"),
        policy=Policy(**policy),
        scenario_columns=["folder"],
    )


def test_image_gate_passes_deduplicated_subset(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good")
    assert evaluation.status == "passed", [c.message for c in evaluation.checks]
    assert check(evaluation, "scenario_coverage").value == 1.0
    assert check(evaluation, "feature_coverage").value == 1.0
    json.dumps(evaluation.details, allow_nan=False)
    json.dumps(evaluation.metrics, allow_nan=False)


def test_image_gate_fails_subset_without_folder(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "no_search")
    scenario = check(evaluation, "scenario_coverage")
    assert evaluation.status == "failed"
    assert scenario.status == "failed"
    assert scenario.message == "scenario coverage 75.0% (3 of 4 tuples) < 95.0%"
    missing = evaluation.details["missing_scenarios"]
    assert [entry["values"] for entry in missing] == [{"folder": "search"}]
    assert check(evaluation, "feature_coverage").status == "failed"


def test_image_gate_duplicates_by_bytes_and_hash(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good")
    metrics = evaluation.metrics
    cleaning = evaluation.details["cleaning"]
    # One byte-identical copy per screen; one shifted and one re-encoded.
    assert metrics["exact_duplicate_rows"] == 4
    assert metrics["near_duplicate_rows"] == 8
    assert cleaning["near_duplicate_threshold"] == NEAR_DUPLICATE_BITS
    assert cleaning["near_duplicate_rule"] == (
        "images of the same scenario tuple whose 64-bit perceptual hashes differ "
        "in at most 8 bits (Hamming distance)"
    )
    assert evaluation.details["images"]["near_duplicate_max_bits"] == 8


def test_image_gate_lists_unreadable_as_invalid(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good")
    assert evaluation.metrics["invalid_rows"] == 2
    assert evaluation.metrics["unreadable_images_original"] == 2
    invalid = evaluation.details["cleaning"]["invalid"]["unreadable_image"]
    assert invalid["rows"] == 2
    listed = evaluation.details["images"]["original"]["unreadable_examples"]
    assert [entry["path"] for entry in listed] == ["login/broken.png", "login/bomb.png"]
    assert listed[1]["reason"].startswith("decompression bomb: ")


def test_image_gate_reports_skipped_members(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good")
    original = evaluation.details["images"]["original"]
    assert original["skipped_members"] == 2
    assert original["by_reason"] == {"operating-system file": 2}
    assert evaluation.metrics["skipped_members_subset"] == 0


def test_image_gate_reports_blur_without_removing(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good")
    blur = evaluation.details["images"]["blur"]
    assert blur["original"]["blurry"] == 2
    assert [e["path"] for e in blur["original"]["examples"]] == [
        "login/login_blurry.png",
        "search/search_blurry.png",
    ]
    assert blur["subset"]["blurry"] == 2
    assert blur["threshold"] > 0
    assert "reported, not removed" in blur["rule"]
    # 40 distinct screens + 2 blurred ones are kept: blur removes nothing.
    assert evaluation.metrics["cleaned_rows"] == 4 * PER_SCREEN + 2


def test_image_gate_matches_subset_by_content(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "renamed")
    assert evaluation.metrics["subset_rows_not_in_original"] == 0
    assert check(evaluation, "feature_coverage").value == 1.0


def test_image_gate_near_duplicates_off(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "good", near_duplicate_ratio=0.0)
    assert evaluation.metrics["near_duplicate_rows"] == 0
    assert evaluation.metrics["exact_duplicate_rows"] == 4


def test_image_gate_with_pca(archives: dict[str, Path]) -> None:
    evaluation = gate(archives, "no_search", pca_components=8)
    pca = evaluation.details["feature_columns"]["pca"]
    assert pca["applied"] is True
    assert pca["components"] == 8
    assert 0.0 < pca["explained_variance"] < 1.0
    assert check(evaluation, "feature_coverage").status == "failed"


def test_close_hash_pairs_by_hand() -> None:
    hashes = np.array([0b0, 0b111, 0b1111_1111, 0b1], dtype=np.uint64)
    first, second = close_hash_pairs(hashes, 3)
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == [
        (0, 1),
        (0, 3),
        (1, 3),
    ]


def test_blur_threshold_robust_to_outliers() -> None:
    scores = np.array([1000.0, 1100.0, 900.0, 1050.0, 950.0, 5.0, np.nan])
    threshold = blur_threshold(scores)
    assert threshold is not None
    assert 5.0 < threshold < 900.0


def test_blur_threshold_needs_five_images() -> None:
    assert blur_threshold(np.array([10.0, 20.0, 30.0, 40.0])) is None


def test_validate_image_request_unknown_column() -> None:
    with pytest.raises(InputError) as raised:
        validate_image_request(["foldr"], None, Policy())
    assert raised.value.field == "scenario_columns"
    assert raised.value.message == (
        "scenario_columns 'foldr' is not a column of an image archive's table; its "
        "columns are ['path', 'folder', 'width', 'height', 'format', 'blur', "
        "'sha256']; did you mean 'folder'?"
    )


def test_validate_image_request_text_column() -> None:
    with pytest.raises(InputError, match="image archive has no text column"):
        validate_image_request(["folder"], None, Policy(text_column="path"))


def test_validate_image_request_required_scenario() -> None:
    policy = Policy(required_scenarios=[{"screen": "login"}])
    with pytest.raises(InputError, match="'screen'"):
        validate_image_request(["folder"], None, policy)


def test_check_image_archive_counts_images(archives: dict[str, Path]) -> None:
    count = check_image_archive(archives["original"], field="original", filename=None)
    assert count == 4 * PER_SCREEN + 12 + 2 + 2


def test_check_image_archive_without_images(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "docs.zip", [("a.txt", b"x"), (".DS_Store", b"y")])
    with pytest.raises(InputError) as raised:
        check_image_archive(path, field="subset", filename="docs.zip")
    assert raised.value.message == (
        "subset 'docs.zip' contains no PNG or JPEG file (2 other members); put "
        ".png, .jpg or .jpeg files in the archive"
    )
