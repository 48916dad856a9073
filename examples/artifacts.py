"""Build real example artifacts for both gates from scikit-learn's digits dataset.

Model gate: a wide MLP teacher, a knowledge-distilled student that should pass and a
too-small distilled student that should fail, all exported to ONNX, plus the test
split they are evaluated on. Data gate: a test-case table with scenario columns, a
distilled subset that keeps its coverage and a subset that lost two classes.

Every step uses a fixed seed, so rebuilding on the same machine and library versions
gives the same accuracies and the same subsets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from app.evaluation.distill import distill
from app.policy import Policy

logger = logging.getLogger(__name__)

SEED = 0
TEST_SIZE = 0.25
N_FEATURES = 64
# Digits pixels are integers from 0 to 16. Models train on pixels / 16 and the
# scale is folded into the first layer before export, so the ONNX files and the
# evaluation set take raw pixel values.
PIXEL_MAX = 16.0
FEATURE_COLUMNS = [f"p{i}" for i in range(N_FEATURES)]
LABEL_COLUMN = "label"
SCENARIO_COLUMNS = ["label", "ink", "width"]

# An onnxruntime session alone adds about 10 MB of peak resident memory (measured
# with onnxruntime 1.32 on x86-64 Linux). The teacher is wide enough to need about
# 60 MB, so a small student can show a memory reduction of 70% or more.
TEACHER_HIDDEN = (2560, 2560)
STUDENT_HIDDEN = (96,)
TINY_STUDENT_HIDDEN = (3,)
HIDDEN_LAYERS = {
    "teacher": TEACHER_HIDDEN,
    "student": STUDENT_HIDDEN,
    "student_tiny": TINY_STUDENT_HIDDEN,
}
TEMPERATURE = 4.0
ALPHA = 0.7
ONNX_OPSET = 17

SUBSET_FRACTION = 0.20
UNUSUAL_CONTAMINATION = 0.05
LOST_LABELS = (3, 8)
COVERAGE_CLUSTER_COUNTS = (10, 20, 50)


@dataclass(frozen=True)
class Schedule:
    """Epochs, learning rates and batch size of one build."""

    teacher_epochs: int
    student_epochs: int
    teacher_lr: float = 3e-4
    student_lr: float = 3e-3
    batch_size: int = 64


FULL_SCHEDULE = Schedule(teacher_epochs=10, student_epochs=60)
QUICK_SCHEDULE = Schedule(teacher_epochs=5, student_epochs=60)


@dataclass(frozen=True)
class DigitsSplit:
    """Stratified train/test split of the digits images, raw pixel values."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# Models ---------------------------------------------------------------------------


def load_digits_split() -> DigitsSplit:
    """Split the 1,797 digits images into 75% train and 25% test, stratified."""
    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features.astype(np.float32),
        labels.astype(np.int64),
        test_size=TEST_SIZE,
        stratify=labels,
        random_state=SEED,
    )
    return DigitsSplit(x_train, x_test, y_train, y_test)


def build_mlp(hidden: Sequence[int], *, n_classes: int = 10) -> nn.Sequential:
    """Build a ReLU MLP from 64 pixel inputs through ``hidden`` to class logits."""
    widths = [N_FEATURES, *hidden, n_classes]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = TEMPERATURE,
    alpha: float = ALPHA,
) -> torch.Tensor:
    """Return the knowledge-distillation loss of a batch.

    ``alpha * KL(softmax(teacher / T) || softmax(student / T)) * T**2`` plus
    ``(1 - alpha) * cross_entropy(student, labels)``. The ``T**2`` factor keeps the
    soft-target gradients on the same scale as the hard-label ones.
    """
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        log_target=True,
        reduction="batchmean",
    )
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft * temperature**2 + (1.0 - alpha) * hard


def train_teacher(model: nn.Module, split: DigitsSplit, schedule: Schedule) -> None:
    """Train ``model`` in place with cross-entropy on the training split."""
    labels = torch.from_numpy(split.y_train)

    def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels[rows])

    _fit(model, split, loss, schedule.teacher_epochs, schedule.teacher_lr, schedule)


def distil_student(
    student: nn.Module, teacher: nn.Module, split: DigitsSplit, schedule: Schedule
) -> None:
    """Train ``student`` in place on the teacher's logits with :func:`kd_loss`."""
    labels = torch.from_numpy(split.y_train)
    teacher.eval()
    with torch.no_grad():
        teacher_logits = teacher(_scaled(split.x_train))

    def loss(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return kd_loss(logits, teacher_logits[rows], labels[rows])

    _fit(student, split, loss, schedule.student_epochs, schedule.student_lr, schedule)


def _fit(
    model: nn.Module,
    split: DigitsSplit,
    loss_fn: LossFn,
    epochs: int,
    lr: float,
    schedule: Schedule,
) -> None:
    inputs = _scaled(split.x_train)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for batch in order.split(schedule.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[batch]), batch)
            loss.backward()
            optimizer.step()
    model.eval()


def _scaled(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels / np.float32(PIXEL_MAX))


def fold_input_scale(model: nn.Sequential) -> None:
    """Divide the first layer's weights by 16 so the model takes raw pixels."""
    first = model[0]
    if not isinstance(first, nn.Linear):
        raise TypeError(f"expected nn.Linear as first layer, got {type(first)!r}")

    with torch.no_grad():
        first.weight /= PIXEL_MAX


def export_onnx(model: nn.Module, path: Path) -> None:
    """Export ``model`` with input ``input`` [batch, 64] and output ``logits``."""
    example = torch.zeros(1, N_FEATURES, dtype=torch.float32)
    with warnings.catch_warnings():
        # Since torch 2.9 the TorchScript-based exporter warns that it is legacy.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def onnx_accuracy(path: Path, features: np.ndarray, labels: np.ndarray) -> float:
    """Return the accuracy of an ONNX classifier run by onnxruntime on the CPU."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": features.astype(np.float32)})
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def onnx_parameter_count(path: Path) -> int:
    """Return the number of elements in the initializers of an ONNX model."""
    model = onnx.load(str(path))
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer)


def build_model_artifacts(out: Path, *, quick: bool = False) -> dict[str, Path]:
    """Train and export the teacher and both students, and save the test split.

    Writes ``teacher.onnx``, ``student.onnx``, ``student_tiny.onnx``,
    ``digits_test.npz`` (``X`` float32 [n, 64] raw pixels, ``y`` int64) and
    ``digits_test.csv`` (columns ``p0``..``p63`` and ``label``). ``quick`` trains
    the teacher for 5 epochs instead of 10. Returns the written paths by artifact name.
    """
    out.mkdir(parents=True, exist_ok=True)
    schedule = QUICK_SCHEDULE if quick else FULL_SCHEDULE
    split = load_digits_split()
    paths = _save_test_split(out, split)

    torch.manual_seed(SEED)
    teacher = build_mlp(HIDDEN_LAYERS["teacher"])
    train_teacher(teacher, split, schedule)
    logger.info("examples.teacher_trained epochs=%d", schedule.teacher_epochs)
    models = {"teacher": teacher}
    for name in ("student", "student_tiny"):
        hidden = HIDDEN_LAYERS[name]
        torch.manual_seed(SEED)
        models[name] = build_mlp(hidden)
        distil_student(models[name], teacher, split, schedule)
        logger.info("examples.student_distilled name=%s hidden=%s", name, hidden)

    for name, model in models.items():
        fold_input_scale(model)
        paths[name] = out / f"{name}.onnx"
        export_onnx(model, paths[name])
    return paths


def _save_test_split(out: Path, split: DigitsSplit) -> dict[str, Path]:
    npz_path = out / "digits_test.npz"
    np.savez(npz_path, X=split.x_test, y=split.y_test)
    csv_path = out / "digits_test.csv"
    table = pd.DataFrame(split.x_test.astype(np.int64), columns=FEATURE_COLUMNS)
    table[LABEL_COLUMN] = split.y_test
    table.to_csv(csv_path, index=False)
    return {"digits_test_npz": npz_path, "digits_test_csv": csv_path}


# Data -----------------------------------------------------------------------------


def digits_test_cases() -> pd.DataFrame:
    """Return every digits image as a test case with scenario columns.

    The columns are:

    - ``label``, the digit;
    - ``ink``, ``low``, ``medium`` or ``high`` by tertile of total pixel intensity;
    - ``width``, ``narrow`` when fewer than 5 of the 8 pixel columns contain a
      stroke of at least half intensity, else ``wide``;
    - ``p0``..``p63``, the pixel values from 0 to 16.
    """
    features, labels = load_digits(return_X_y=True)
    pixels = features.astype(np.int64)
    images = pixels.reshape(-1, 8, 8)
    stroke_columns = (images.max(axis=1) >= PIXEL_MAX / 2).sum(axis=1)
    table = pd.DataFrame(
        {
            LABEL_COLUMN: labels.astype(np.int64),
            "ink": pd.qcut(
                pixels.sum(axis=1), 3, labels=["low", "medium", "high"]
            ).astype(str),
            "width": np.where(stroke_columns < 5, "narrow", "wide"),
        }
    )
    return pd.concat([table, pd.DataFrame(pixels, columns=FEATURE_COLUMNS)], axis=1)


def unusual_rows(table: pd.DataFrame) -> np.ndarray:
    """Flag the 5% most unusual rows of ``table`` as a boolean mask.

    An isolation forest fitted on the standardised pixel columns flags the rows.
    """
    features = StandardScaler().fit_transform(table[FEATURE_COLUMNS].to_numpy(float))
    forest = IsolationForest(contamination=UNUSUAL_CONTAMINATION, random_state=SEED)
    flags: np.ndarray = forest.fit_predict(features) == -1
    return flags


def select_distilled_subset(
    table: pd.DataFrame, *, fraction: float = SUBSET_FRACTION
) -> pd.DataFrame:
    """Distil about ``fraction`` of the rows with DistilGate's own ``distill``.

    It cleans the table, keeps a row of every (label, ink, width) tuple and value
    pair, keeps 5-10% unusual rows and spends the rest of the budget on
    nearest-neighbour coverage of the pixel space, with the gate's defaults.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    result = distill(
        table,
        fraction=fraction,
        scenario_columns=[c for c in SCENARIO_COLUMNS if c != "label"],
        label_column="label",
        policy=Policy(),
        seed=SEED,
    )
    return result.subset.reset_index(drop=True)


def select_lost_class_subset(
    table: pd.DataFrame, size: int, *, lost_labels: Sequence[int] = LOST_LABELS
) -> pd.DataFrame:
    """Sample ``size`` rows uniformly from the rows whose label is not lost."""
    remaining = table[~table[LABEL_COLUMN].isin(lost_labels)]
    if size > len(remaining):
        raise ValueError(
            f"size must be at most {len(remaining)}, the number of rows whose label "
            f"is not in {list(lost_labels)}; got {size}"
        )

    generator = np.random.default_rng(SEED)
    rows = generator.choice(remaining.index, size=size, replace=False)
    return table.loc[np.sort(rows)].reset_index(drop=True)


def scenario_tuples(table: pd.DataFrame) -> set[tuple[Any, ...]]:
    """Return the distinct (label, ink, width) tuples of ``table``."""
    return set(table[SCENARIO_COLUMNS].itertuples(index=False, name=None))


def pairwise_values(table: pd.DataFrame) -> set[tuple[str, Any, str, Any]]:
    """Return the distinct value pairs of every two scenario columns."""
    pairs: set[tuple[str, Any, str, Any]] = set()
    for i, first in enumerate(SCENARIO_COLUMNS):
        for second in SCENARIO_COLUMNS[i + 1 :]:
            for a, b in table[[first, second]].itertuples(index=False, name=None):
                pairs.add((first, a, second, b))
    return pairs


def build_data_artifacts(out: Path) -> dict[str, Path]:
    """Write the test-case table and its two subsets as CSV and Parquet.

    Raises:
        RuntimeError: the distilled subset lost a scenario tuple or column pair.
    """
    out.mkdir(parents=True, exist_ok=True)
    original = digits_test_cases()
    good = select_distilled_subset(original)
    lost = scenario_tuples(original) - scenario_tuples(good)
    lost_pairs = pairwise_values(original) - pairwise_values(good)
    if lost or lost_pairs:
        raise RuntimeError(
            f"distilled subset lost {len(lost)} scenario tuples and "
            f"{len(lost_pairs)} column pairs: {sorted(lost)[:5]}"
        )

    tables = {
        "original": original,
        "subset_good": good,
        "subset_bad": select_lost_class_subset(original, len(good)),
    }
    logger.info(
        "examples.subsets_selected original=%d subset_good=%d subset_bad=%d",
        len(original),
        len(good),
        len(tables["subset_bad"]),
    )
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[f"{name}_csv"] = out / f"{name}.csv"
        table.to_csv(paths[f"{name}_csv"], index=False)
        paths[f"{name}_parquet"] = out / f"{name}.parquet"
        table.to_parquet(paths[f"{name}_parquet"], index=False)
    return paths


# Manifest -------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_all(
    out: Path, *, quick: bool = False, reuse: bool = False
) -> dict[str, Path]:
    """Build every model and data artifact and write ``manifest.json`` beside them.

    With ``reuse``, artifacts already in ``out`` are returned without training
    again when their manifest was built with the same ``quick`` setting and
    every file still has the sha256 the manifest records.
    """
    if reuse and (existing := _reusable(out, quick=quick)) is not None:
        return existing
    paths = build_model_artifacts(out, quick=quick)
    paths |= build_data_artifacts(out)
    paths["manifest"] = write_manifest(out, paths, quick=quick)
    return paths


def write_manifest(out: Path, paths: dict[str, Path], *, quick: bool) -> Path:
    """Write the file digests, model figures and subset figures as JSON.

    Accuracies are fractions measured by onnxruntime on ``digits_test.npz``.
    Unusual rows and k-means clusters are counted with this module's own isolation
    forest and clusterings, so they can differ from the data gate's figures.
    """
    manifest = {
        "dataset": "scikit-learn load_digits",
        "seed": SEED,
        "quick": quick,
        "paths": {key: path.name for key, path in paths.items()},
        "files": {
            path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in paths.values()
        },
        "models": _model_figures(paths),
        "data": _data_figures(paths),
    }
    manifest_path = out / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest_path


def _reusable(out: Path, *, quick: bool) -> dict[str, Path] | None:
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("quick") != quick or "paths" not in manifest:
        return None
    for name, entry in manifest["files"].items():
        path = out / name
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            return None
    paths = {key: out / name for key, name in manifest["paths"].items()}
    return paths | {"manifest": manifest_path}


def outcome_problems(manifest: dict[str, Any]) -> list[str]:
    """List the ways the built artifacts miss the verdicts the demo expects.

    The accuracy limit is the gate's default ``max_accuracy_loss``. The student
    must stay within it and the tiny student must exceed it. ``subset_good`` must
    keep every scenario tuple and ``subset_bad`` must lose at least one.
    """
    limit = Policy().max_accuracy_loss
    models, data = manifest["models"], manifest["data"]
    problems = []
    if models["student"]["accuracy_loss"] > limit:
        problems.append(f"student loses more than {limit * 100:g} pp of accuracy")
    if models["student_tiny"]["accuracy_loss"] <= limit:
        problems.append(f"student_tiny loses at most {limit * 100:g} pp of accuracy")
    tuples = data["original"]["scenario_tuples"]
    if data["subset_good"]["scenario_tuples"] != tuples:
        problems.append("subset_good lost a scenario tuple")
    if data["subset_bad"]["scenario_tuples"] >= tuples:
        problems.append("subset_bad keeps every scenario tuple")
    return problems


def _model_figures(paths: dict[str, Path]) -> dict[str, Any]:
    with np.load(paths["digits_test_npz"]) as test:
        features, labels = test["X"], test["y"]
    figures: dict[str, Any] = {}
    for name, hidden in HIDDEN_LAYERS.items():
        figures[name] = {
            "file": paths[name].name,
            "hidden_layers": list(hidden),
            "parameters": onnx_parameter_count(paths[name]),
            "accuracy": onnx_accuracy(paths[name], features, labels),
        }
    teacher = figures["teacher"]
    for name in ("student", "student_tiny"):
        student = figures[name]
        student["accuracy_loss"] = teacher["accuracy"] - student["accuracy"]
        student["parameter_ratio"] = teacher["parameters"] / student["parameters"]
    return figures


def _data_figures(paths: dict[str, Path]) -> dict[str, Any]:
    original = pd.read_csv(paths["original_csv"])
    features = original[FEATURE_COLUMNS].to_numpy(dtype=np.float64)
    clusterings = {
        k: KMeans(n_clusters=k, n_init=4, random_state=SEED).fit(features)
        for k in COVERAGE_CLUSTER_COUNTS
    }
    unusual = set(original.index[unusual_rows(original)])
    figures: dict[str, Any] = {}
    for name in ("original", "subset_good", "subset_bad"):
        table = pd.read_csv(paths[f"{name}_csv"])
        subset_features = table[FEATURE_COLUMNS].to_numpy(dtype=np.float64)
        figures[name] = {
            "rows": len(table),
            "scenario_tuples": len(scenario_tuples(table)),
            "column_pairs": len(pairwise_values(table)),
            "unusual_rows": _count_matches(original, unusual, table),
            "kmeans_clusters_reached": {
                str(k): len(np.unique(model.predict(subset_features)))
                for k, model in clusterings.items()
            },
        }
    return figures


def _count_matches(original: pd.DataFrame, rows: set[Any], table: pd.DataFrame) -> int:
    """Count rows of ``table`` equal to one of the given rows of ``original``."""
    columns = [LABEL_COLUMN, *FEATURE_COLUMNS]
    marked = original.loc[sorted(rows), columns].itertuples(index=False, name=None)
    keys = set(marked)
    return sum(row in keys for row in table[columns].itertuples(index=False, name=None))
