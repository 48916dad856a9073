"""Small real ONNX models for the model gate tests.

The torch and scikit-learn models are trained for seconds on scikit-learn's
bundled digits dataset (8x8 images, 64 integer features from 0 to 16, 10 classes)
and exported to ONNX. The hand-built graphs cover input types and structures
that exporters rarely produce.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
OPSET = 17


@dataclass(frozen=True)
class Digits:
    """The digits dataset split into training and evaluation rows (float64)."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> Digits:
    """Split digits 75/25 with a fixed seed, stratified by class."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=SEED, stratify=y
    )
    return Digits(X_train, X_test, y_train, y_test)


def train_mlp(digits: Digits, hidden: list[int], *, epochs: int) -> torch.nn.Sequential:
    """Train a ReLU MLP on digits with Adam and full-batch steps; return the module."""
    torch.manual_seed(SEED)
    # One thread avoids contention on small machines and keeps training fast.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(digits, hidden, epochs)
    finally:
        torch.set_num_threads(threads)


def _fit(digits: Digits, hidden: list[int], epochs: int) -> torch.nn.Sequential:
    widths = [64, *hidden]
    layers: list[torch.nn.Module] = []
    for width_in, width_out in zip(widths, widths[1:], strict=False):
        layers += [torch.nn.Linear(width_in, width_out), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(widths[-1], 10))
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    X = torch.tensor(digits.X_train, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.y_train, dtype=torch.long)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        optimizer.step()
    # Fold the input scaling into the first layer so the model takes raw 0..16.
    with torch.no_grad():
        model[0].weight /= 16.0
    return model.eval()


def parameter_count(model: torch.nn.Module) -> int:
    """Count a torch module's parameters the way torch reports them."""
    return sum(parameter.numel() for parameter in model.parameters())


def export_torch(
    model: torch.nn.Module, path: Path, *, batch: int | None = None
) -> Path:
    """Export a torch module taking [N, 64] to ONNX with input "input", output "logits".

    With ``batch`` set the batch dimension is fixed to that size, otherwise it is
    the symbolic dimension "batch".
    """
    example = torch.zeros(batch or 1, 64)
    axes = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) is deprecated but fast and exact.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
            dynamo=False,
        )
    return path


def export_logistic_regression(digits: Digits, path: Path) -> Path:
    """Train a scikit-learn logistic regression and export it with skl2onnx.

    The ONNX model has an int64 ``output_label`` output and a ZipMap
    ``output_probability`` output, a sequence of maps from class to probability.
    """
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X = digits.X_train.astype(np.float32) / 16.0
    classifier = LogisticRegression(max_iter=300, random_state=SEED)
    classifier.fit(X, digits.y_train)
    # Dividing the coefficients by 16 makes the exported model take raw 0..16.
    classifier.coef_ = classifier.coef_ / 16.0
    model = to_onnx(
        classifier,
        digits.X_train[:1].astype(np.float32),
        target_opset={"": OPSET, "ai.onnx.ml": 3},
    )
    onnx.save(model, str(path))
    return path


def save_graph(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[np.ndarray] | None = None,
    *,
    domains: dict[str, int] | None = None,
) -> Path:
    """Save a hand-built graph; initializer arrays are named w0, w1, ..."""
    tensors = [
        numpy_helper.from_array(array, name=f"w{index}")
        for index, array in enumerate(initializers or [])
    ]
    graph = helper.make_graph(nodes, "graph", inputs, outputs, tensors)
    opsets = [helper.make_opsetid("", OPSET)]
    opsets += [helper.make_opsetid(name, v) for name, v in (domains or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def linear_model(path: Path, *, input_type: int, features: int = 4) -> Path:
    """Save a linear scorer whose input x [N, features] has type ``input_type``.

    The graph casts x to float and multiplies it by a fixed [features, 3] matrix,
    which gives the output "scores" [N, 3].
    """
    weights = np.arange(features * 3, dtype=np.float32).reshape(features, 3) - 5.0
    return save_graph(
        path,
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["xf", "w0"], ["scores"]),
        ],
        [helper.make_tensor_value_info("x", input_type, ["N", features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [weights],
    )
