"""Cast and shape evaluation rows to a model's declared input.

The gate validates every value before a model sees it: integer and float64
rows are cast to the declared element type with overflow checked, and 2-D rows
are reshaped to a fixed multi-dimensional input when the element counts match.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.errors import InputError
from app.evaluation.onnx_models import ModelInfo


def prepare_features(features: np.ndarray, info: ModelInfo, *, role: str) -> np.ndarray:
    """Cast dataset rows to the model's input type and shape them to its input.

    Rows of a 2-D dataset are reshaped when the model declares fixed row
    dimensions with the same number of elements, for example 64 columns into
    [N, 1, 8, 8]. Casts to integer types accept only finite whole numbers in range,
    and casts to float types reject finite values that would become infinite.

    Raises:
        InputError: the features are not numeric, do not fit the declared shape,
            or a value does not fit the declared type. The error names the first
            such row and column.
    """
    cast = _cast_features(features, info, role)
    return _match_shape(cast, info, role)


def _match_shape(features: np.ndarray, info: ModelInfo, role: str) -> np.ndarray:
    shape = info.input_shape
    if shape is None:
        return features
    if len(shape) == 0:
        raise InputError(
            f"{role} input {info.input_name!r} is a scalar but DistilGate feeds a "
            "batch of rows; export the model with a batch dimension first",
            field=role,
            value=shape,
        )
    expected, actual = shape[1:], features.shape[1:]
    fixed = [dim for dim in expected if isinstance(dim, int)]
    if len(expected) == len(actual):
        if all(
            not isinstance(e, int) or e == a
            for e, a in zip(expected, actual, strict=True)
        ):
            return features
    elif len(fixed) == len(expected) and math.prod(fixed) == math.prod(actual):
        return features.reshape((len(features), *fixed))
    if len(expected) == len(actual) == 1:
        found = f"dataset rows have {actual[0]} features but the {role} expects "
        found += str(expected[0])
    else:
        found = f"dataset rows have shape {list(actual)} but the {role} expects "
        found += f"rows of shape {expected}"
    raise InputError(
        f"{found} (input {info.input_name!r} shape {shape}); pass the feature "
        f"columns the {role} was trained on, in the same order",
        field="dataset",
        value=list(actual),
    )


def _cast_features(features: np.ndarray, info: ModelInfo, role: str) -> np.ndarray:
    if features.dtype.kind not in "biuf":
        raise InputError(
            f"dataset features have dtype {features.dtype} but the models take "
            "numbers; encode or drop the non-numeric feature columns",
            field="dataset",
            value=str(features.dtype),
        )
    target = _numeric_dtype(info.input_type)
    if target is None:
        raise InputError(
            f"{role} input {info.input_name!r} has type {info.input_type} but "
            "DistilGate feeds numeric features; export the model with a float or "
            "integer input",
            field=role,
            value=info.input_type,
        )
    if target.kind == "f":
        return _cast_to_float(features, target, role)
    return _cast_to_integer(features, target, role)


def _numeric_dtype(name: str) -> np.dtype[Any] | None:
    if name in ("string", "undefined"):
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biuf" else None


def _cast_to_float(
    features: np.ndarray, target: np.dtype[Any], role: str
) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cast = features.astype(target)
    overflow = np.isfinite(features) & ~np.isfinite(cast)
    if overflow.any():
        raise _value_error(
            features,
            overflow,
            f"is too large for the {role}'s input type {target}",
            "scale the feature or export the model with a float64 input",
        )
    return cast


def _cast_to_integer(
    features: np.ndarray, target: np.dtype[Any], role: str
) -> np.ndarray:
    if features.dtype.kind == "f":
        _reject(features, ~np.isfinite(features), target, role, "is not finite")
        whole = np.floor(features) == features
        _reject(features, ~whole, target, role, "is not a whole number")
    if target.kind == "b":
        outside = (features != 0) & (features != 1)
        _reject(features, outside, target, role, "is neither 0 nor 1")
        return features.astype(target)
    limits = np.iinfo(target)
    if features.dtype.kind == "f":
        # float(max + 1) is exact (a power of two), unlike float(max).
        outside = (features < float(limits.min)) | (features >= float(limits.max + 1))
    else:
        outside = (features < limits.min) | (features > limits.max)
    _reject(features, outside, target, role, f"is outside {limits.min}..{limits.max}")
    return features.astype(target)


def _reject(
    features: np.ndarray,
    bad: np.ndarray,
    target: np.dtype[Any],
    role: str,
    problem: str,
) -> None:
    if bad.any():
        raise _value_error(
            features,
            bad,
            f"{problem}, but the {role}'s input type is {target}",
            "fill or fix these values, or export the model with a float input",
        )


def _value_error(
    features: np.ndarray, bad: np.ndarray, problem: str, fix: str
) -> InputError:
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    row = int(index[0])
    rest = [int(i) for i in index[1:]]
    where = f"row {row}, column {rest[0]}" if len(rest) == 1 else f"row {row} {rest}"
    value = features[index].item()
    count = int(np.count_nonzero(bad))
    return InputError(
        f"dataset value {value!r} at {where} (0-based) {problem} ({count} values "
        f"affected); {fix}",
        field="dataset",
        value=value,
    )
