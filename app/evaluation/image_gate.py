"""The data gate on two zip archives of images.

The rows are the images' metadata (see ``app.evaluation.images``). Exact
duplicates and the match of subset images to the original use the SHA-256 of
the file bytes. Near-duplicates are images of one scenario whose 64-bit
perceptual hashes differ in at most ``NEAR_DUPLICATE_BITS`` bits. Coverage uses
the hash bits and a grayscale thumbnail, followed by the table encoding of
``folder``, ``format``, ``width`` and ``height``. Blurry images are counted and
listed, never removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from app.errors import InputError
from app.evaluation.archives import list_members, skip_reason
from app.evaluation.cleaning import NearPass
from app.evaluation.data_gate import evaluate_data
from app.evaluation.features import TableFeaturiser
from app.evaluation.images import (
    COLUMNS,
    VECTOR_WIDTH,
    ImageSet,
    folder_depth,
    folders,
    is_image_name,
)
from app.evaluation.numpy_files import upload_name
from app.evaluation.progress import ProgressFn
from app.evaluation.readers import suggest
from app.evaluation.required import validate_rules
from app.evaluation.text import text_columns
from app.policy import Policy
from app.results import Evaluation

# Re-encoding a JPEG or shifting a screenshot by a few pixels changes a few
# bits, while different screens differ in about half of the 64.
NEAR_DUPLICATE_BITS = 8
# Blurry: a log10 blur score more than this many robust standard deviations
# (1.4826 x median absolute deviation) below the original's median.
BLUR_DEVIATIONS = 3.0
# Floor of that deviation, in log10 units, so a set of equally sharp images
# does not flag half of itself.
MIN_BLUR_SPREAD = 0.1
MIN_BLUR_ROWS = 5
MAX_LISTED = 10
# Block rows of the pairwise Hamming distances, about 8 MB per block at 4,000
# images.
_BLOCK = 256


class UnreadableImage:
    """Rows whose image could not be decoded: they have no width."""

    name = "unreadable_image"

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame["width"].isna().to_numpy(), dtype=bool)


class HammingNearFinder:
    """Links images whose perceptual hashes differ in few bits."""

    def __init__(self, phash: np.ndarray, max_bits: int = NEAR_DUPLICATE_BITS):
        self._phash = phash
        self.max_bits = max_bits
        self.rule = (
            f"images of the same scenario tuple whose 64-bit perceptual hashes "
            f"differ in at most {max_bits} bits (Hamming distance)"
        )

    def __call__(self, rows: np.ndarray, tuples: np.ndarray) -> NearPass:
        hashes = self._phash[rows]
        first, second = close_hash_pairs(hashes, self.max_bits)
        same = tuples[first] == tuples[second]
        count = len(rows)
        graph = sparse.coo_matrix(
            (np.ones(int(same.sum())), (first[same], second[same])),
            shape=(count, count),
        )
        _, component = connected_components(graph, directed=False)
        lowest = np.full(component.max() + 1, count, dtype=np.int64)
        np.minimum.at(lowest, component, np.arange(count))
        return NearPass(float(self.max_bits), None, 0, lowest[component])


def close_hash_pairs(
    hashes: np.ndarray, max_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return every pair (i, j), i < j, whose hashes differ in <= ``max_bits`` bits."""
    firsts, seconds = [], []
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start : start + _BLOCK]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, :])
        i, j = np.nonzero(distance <= max_bits)
        i = i + start
        later = j > i
        firsts.append(i[later])
        seconds.append(j[later])
    if not firsts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


class ImageFeaturiser:
    """Image vectors looked up by content hash, then the metadata table encoding."""

    def __init__(self, *images: ImageSet) -> None:
        self._vectors: dict[str, np.ndarray] = {}
        for image_set in images:
            for sha, vector in zip(
                image_set.frame["sha256"], image_set.vectors, strict=True
            ):
                self._vectors.setdefault(str(sha), vector)
        self._table = TableFeaturiser(skip=("path", "sha256", "blur"))

    @property
    def width(self) -> int:
        return VECTOR_WIDTH + self._table.width

    def fit(self, frame: pd.DataFrame, rows: np.ndarray) -> None:
        self._table.fit(frame, rows)

    def transform(
        self, frame: pd.DataFrame, rows: np.ndarray | None = None
    ) -> np.ndarray:
        shas = frame["sha256"] if rows is None else frame["sha256"].iloc[rows]
        empty = np.zeros(VECTOR_WIDTH, dtype=np.float32)
        vectors = [self._vectors.get(str(sha), empty) for sha in shas]
        image_part = np.vstack(vectors) if vectors else np.empty((0, VECTOR_WIDTH))
        parts = [image_part, self._table.transform(frame, rows)]
        return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        described = self._table.describe()
        described["image"] = (
            "64 perceptual-hash bits (+-1/8 each) and a 16x16 grayscale thumbnail "
            "standardised to unit length"
        )
        return described


def check_image_archive(path: Path, *, field: str, filename: str | None) -> int:
    """Count an image archive's images after checking its entries, decoding none.

    Raises:
        InputError: as ``list_members``, or the archive has no PNG or JPEG file.
        PayloadTooLargeError: as ``list_members``.
    """
    members = list_members(path, field=field, filename=filename)
    images = [
        info
        for info in members
        if skip_reason(info) is None and is_image_name(info.filename)
    ]
    if not images:
        raise InputError(
            f"{upload_name(field, filename)} contains no PNG or JPEG file "
            f"({len(members)} other members); put .png, .jpg or .jpeg files in "
            "the archive",
            field=field,
            value=filename,
        )
    return len(images)


def validate_image_request(
    columns: Sequence[str], label_column: str | None, policy: Policy
) -> None:
    """Reject column names an image table does not have, and text columns.

    Raises:
        InputError: a scenario, label or required-scenario column is not one of
            the image table's columns, or the policy names a text column.
    """
    for name, field in [
        *((column, "scenario_columns") for column in columns),
        *([(label_column, "label_column")] if label_column else []),
    ]:
        if name not in COLUMNS:
            raise InputError(
                f"{field} {name!r} is not a column of an image archive's table; "
                f"its columns are {COLUMNS}{suggest(name, COLUMNS)}",
                field=field,
                value=name,
            )
    if text_columns(policy):
        raise InputError(
            f"policy text column {text_columns(policy)[0]!r} applies to tables; an "
            "image archive has no text column, so remove text_column",
            field="policy.text_column",
            value=text_columns(policy)[0],
        )
    validate_rules(policy.required_scenarios, COLUMNS)


def evaluate_images(
    original: ImageSet,
    subset: ImageSet,
    *,
    policy: Policy,
    scenario_columns: Sequence[str] = (),
    label_column: str | None = None,
    progress: ProgressFn | None = None,
) -> Evaluation:
    """Run the data gate on two image archives and add the image details."""
    depth = folder_depth(list(original.frame["path"]))
    for image_set in (original, subset):
        image_set.frame["folder"] = folders(list(image_set.frame["path"]), depth)
    finder = HammingNearFinder(original.phash)
    evaluation = evaluate_data(
        original.frame,
        subset.frame,
        policy=policy,
        scenario_columns=scenario_columns,
        label_column=label_column,
        featuriser=ImageFeaturiser(original, subset),
        row_rules=(UnreadableImage(),),
        row_key="sha256",
        near_finder=finder,
        progress=progress,
    )
    blur = blur_report(original, subset)
    evaluation.details["images"] = {
        "original": archive_report(original),
        "subset": archive_report(subset),
        "near_duplicate_max_bits": finder.max_bits,
        "blur": blur,
    }
    evaluation.metrics.update(
        {
            "unreadable_images_original": len(original.unreadable),
            "unreadable_images_subset": len(subset.unreadable),
            "skipped_members_original": original.skipped.total,
            "skipped_members_subset": subset.skipped.total,
            "blurry_images_original": blur["original"]["blurry"],
            "blurry_images_subset": blur["subset"]["blurry"],
        }
    )
    return evaluation


def archive_report(images: ImageSet) -> dict[str, Any]:
    """Describe an archive's images, unreadable files and skipped members."""
    paths = images.frame["path"]
    return {
        "images": len(images.frame),
        "unreadable": len(images.unreadable),
        "unreadable_examples": [
            {"row": row, "path": str(paths.iloc[row]), "reason": reason}
            for row, reason in list(images.unreadable.items())[:MAX_LISTED]
        ],
        **images.skipped.report(),
    }


def blur_threshold(scores: np.ndarray) -> float | None:
    """Return the blur score below which an image counts as blurry, or None.

    The threshold is calibrated on the original's readable images:
    10 ** (median - 3 x max(1.4826 x MAD, 0.1)) of their log10 scores. None when
    fewer than 5 images have a score.
    """
    finite = scores[np.isfinite(scores)]
    if len(finite) < MIN_BLUR_ROWS:
        return None
    logs = np.log10(np.maximum(finite, 1e-6))
    median = float(np.median(logs))
    spread = max(1.4826 * float(np.median(np.abs(logs - median))), MIN_BLUR_SPREAD)
    return float(10 ** (median - BLUR_DEVIATIONS * spread))


def blur_report(original: ImageSet, subset: ImageSet) -> dict[str, Any]:
    """Count and list the blurry images of both archives."""
    threshold = blur_threshold(original.frame["blur"].to_numpy(dtype=np.float64))
    report: dict[str, Any] = {
        "measure": "variance of the Laplacian of the grayscale image, longer side "
        "at most 1024 pixels",
        "rule": (
            "blurry below 10^(median - 3 x max(1.4826 x MAD, 0.1)) of the log10 "
            "scores of the original's readable images; reported, not removed"
        ),
        "threshold": threshold,
    }
    for role, images in (("original", original), ("subset", subset)):
        scores = images.frame["blur"].to_numpy(dtype=np.float64)
        blurry = (
            np.flatnonzero(scores < threshold) if threshold is not None else np.empty(0)
        )
        report[role] = {
            "blurry": len(blurry),
            "examples": [
                {"row": int(row), "path": str(images.frame["path"].iloc[row])}
                for row in blurry[:MAX_LISTED]
            ],
        }
    if threshold is None:
        report["note"] = (
            f"not calibrated: the original has fewer than {MIN_BLUR_ROWS} readable "
            "images"
        )
    return report
