"""Build the example artifacts once (quick schedule) and check their outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from examples.artifacts import (
    FEATURE_COLUMNS,
    LOST_LABELS,
    SCENARIO_COLUMNS,
    build_all,
    digits_test_cases,
    outcome_problems,
    pairwise_values,
    select_distilled_subset,
    select_lost_class_subset,
    sha256_file,
)

pytestmark = pytest.mark.slow

MODELS = ("teacher", "student", "student_tiny")
MAX_ACCURACY_LOSS = 0.03
WARNING_PARAM_RATIO = 10.0

Split = tuple[np.ndarray, np.ndarray]
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_all(tmp_path_factory.mktemp("artifacts"), quick=True)


@pytest.fixture(scope="module")
def manifest(built: dict[str, Path]) -> Manifest:
    return json.loads(built["manifest"].read_text())


@pytest.fixture(scope="module")
def digits_split(built: dict[str, Path]) -> Split:
    with np.load(built["digits_test_npz"]) as data:
        return data["X"], data["y"]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _accuracy(path: Path, split: Split) -> float:
    features, labels = split
    (logits,) = _session(path).run(["logits"], {"input": features})
    return float(np.mean(logits.argmax(axis=1) == labels))


def _scenarios(table: pd.DataFrame) -> set[tuple[Any, ...]]:
    return set(table[SCENARIO_COLUMNS].itertuples(index=False, name=None))


@pytest.mark.parametrize("name", MODELS)
def test_onnx_model_signature(built: dict[str, Path], name: str) -> None:
    session = _session(built[name])
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    assert model_input.name == "input"
    assert model_input.type == "tensor(float)"
    assert model_input.shape[1] == 64
    assert isinstance(model_input.shape[0], str)
    assert model_output.name == "logits"
    assert model_output.shape[1] == 10


def test_digits_split_arrays(digits_split: Split) -> None:
    features, labels = digits_split
    assert features.dtype == np.float32
    assert labels.dtype == np.int64
    assert features.shape == (450, 64)
    assert labels.shape == (450,)
    assert set(np.unique(labels)) == set(range(10))


def test_digits_split_csv_matches_npz(
    built: dict[str, Path], digits_split: Split
) -> None:
    table = pd.read_csv(built["digits_test_csv"])
    assert list(table.columns) == [*FEATURE_COLUMNS, "label"]
    np.testing.assert_array_equal(table[FEATURE_COLUMNS].to_numpy(), digits_split[0])
    np.testing.assert_array_equal(table["label"].to_numpy(), digits_split[1])


def test_teacher_accuracy(built: dict[str, Path], digits_split: Split) -> None:
    assert _accuracy(built["teacher"], digits_split) >= 0.95


def test_student_within_accuracy_limit(
    built: dict[str, Path], digits_split: Split
) -> None:
    teacher = _accuracy(built["teacher"], digits_split)
    student = _accuracy(built["student"], digits_split)
    assert teacher - student <= MAX_ACCURACY_LOSS


def test_tiny_student_exceeds_accuracy_limit(
    built: dict[str, Path], digits_split: Split
) -> None:
    teacher = _accuracy(built["teacher"], digits_split)
    tiny = _accuracy(built["student_tiny"], digits_split)
    assert teacher - tiny > MAX_ACCURACY_LOSS


@pytest.mark.parametrize("name", ["student", "student_tiny"])
def test_student_file_size_reduction(built: dict[str, Path], name: str) -> None:
    teacher_bytes = built["teacher"].stat().st_size
    student_bytes = built[name].stat().st_size
    assert 1 - student_bytes / teacher_bytes >= 0.70


def test_parameter_counts(manifest: Manifest) -> None:
    models = manifest["models"]
    assert models["teacher"]["parameters"] == 64 * 2560 + 2560 * 2560 + 2560 * 10 + (
        2560 + 2560 + 10
    )
    assert models["student"]["parameters"] == 64 * 96 + 96 + 96 * 10 + 10
    assert models["student_tiny"]["parameters"] == 64 * 3 + 3 + 3 * 10 + 10


def test_parameter_ratio_above_warning_level(manifest: Manifest) -> None:
    models = manifest["models"]
    ratio = models["teacher"]["parameters"] / models["student"]["parameters"]
    assert ratio > WARNING_PARAM_RATIO
    assert models["student"]["parameter_ratio"] == pytest.approx(ratio)


def test_manifest_accuracies_match_onnxruntime(
    built: dict[str, Path], manifest: Manifest, digits_split: Split
) -> None:
    for name in MODELS:
        measured = _accuracy(built[name], digits_split)
        assert manifest["models"][name]["accuracy"] == pytest.approx(measured)


def test_manifest_digests_match_files(
    built: dict[str, Path], manifest: Manifest
) -> None:
    listed = manifest["files"]
    on_disk = {path.name for key, path in built.items() if key != "manifest"}
    assert set(listed) == on_disk
    for name, entry in listed.items():
        path = built["manifest"].parent / name
        assert entry["sha256"] == sha256_file(path), name
        assert entry["bytes"] == path.stat().st_size, name


def test_manifest_reports_expected_outcomes(manifest: Manifest) -> None:
    assert outcome_problems(manifest) == []


def test_subset_good_keeps_every_scenario(built: dict[str, Path]) -> None:
    original = pd.read_csv(built["original_csv"])
    good = pd.read_csv(built["subset_good_csv"])
    assert _scenarios(good) == _scenarios(original)
    assert pairwise_values(good) == pairwise_values(original)


def test_subset_good_size(built: dict[str, Path]) -> None:
    original = pd.read_csv(built["original_csv"])
    good = pd.read_csv(built["subset_good_csv"])
    assert 0.15 * len(original) <= len(good) <= 0.25 * len(original)


def test_subset_good_rows_come_from_original(built: dict[str, Path]) -> None:
    original = pd.read_csv(built["original_csv"])
    good = pd.read_csv(built["subset_good_csv"])
    merged = good.merge(original.drop_duplicates(), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_subset_bad_drops_lost_labels(built: dict[str, Path]) -> None:
    good = pd.read_csv(built["subset_good_csv"])
    bad = pd.read_csv(built["subset_bad_csv"])
    assert len(bad) == len(good)
    assert not bad["label"].isin(LOST_LABELS).any()
    assert set(bad["label"]) == set(range(10)) - set(LOST_LABELS)


@pytest.mark.parametrize("name", ["original", "subset_good", "subset_bad"])
def test_parquet_matches_csv(built: dict[str, Path], name: str) -> None:
    from_csv = pd.read_csv(built[f"{name}_csv"])
    from_parquet = pd.read_parquet(built[f"{name}_parquet"])
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=False)


def test_scenario_columns_values() -> None:
    table = digits_test_cases()
    assert set(table["ink"]) == {"low", "medium", "high"}
    assert set(table["width"]) == {"narrow", "wide"}
    assert len(table) == 1797


def test_distilled_subset_rejects_fraction() -> None:
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1\.5"):
        select_distilled_subset(digits_test_cases(), fraction=1.5)


def test_lost_class_subset_rejects_size() -> None:
    expected = r"size must be at most 1440, .* not in \[3, 8\]; got 5000"
    with pytest.raises(ValueError, match=expected):
        select_lost_class_subset(digits_test_cases(), 5000)
