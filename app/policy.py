"""Gate thresholds: the documented defaults and the validation of overrides."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import InputError

Resource = Literal["size", "latency", "memory"]
ALL_RESOURCES: tuple[Resource, ...] = ("size", "latency", "memory")


class Policy(BaseModel):
    """Thresholds a gate applies. Every ratio is a fraction: 0.95, never 95."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_coverage: float = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="Minimum share of the original's coverage the subset keeps.",
    )
    max_accuracy_loss: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="Maximum teacher accuracy minus student accuracy (0.03 = 3 pp).",
    )
    min_reduction: float = Field(
        0.70,
        ge=0.0,
        le=1.0,
        description="Minimum 1 - student/teacher for each checked resource.",
    )
    resources: list[Resource] = Field(
        default_factory=lambda: list(ALL_RESOURCES),
        description="Resources whose reduction is gated.",
    )
    max_param_ratio: float = Field(
        10.0,
        gt=1.0,
        le=1e6,
        description="Teacher:student parameter ratio above which a warning is raised.",
    )
    edge_case_share: tuple[float, float] = Field(
        (0.05, 0.10),
        description="Advisory range for the share of unusual rows in the subset.",
    )

    @field_validator("edge_case_share")
    @classmethod
    def _check_share_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value

    @field_validator("resources")
    @classmethod
    def _check_unique(cls, value: list[Resource]) -> list[Resource]:
        if len(set(value)) != len(value):
            raise ValueError("expected each resource at most once")
        return value


def parse_policy(raw: str | dict[str, Any] | None, *, field: str = "policy") -> Policy:
    """Build a policy from a JSON text or mapping of overrides.

    Raises:
        InputError: the text is not a JSON object, a key is unknown, or a value
            is out of range. The message names the key and the accepted range.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return Policy()
    overrides = _decode(raw, field) if isinstance(raw, str) else raw
    if not isinstance(overrides, dict):
        raise InputError(
            f"{field} must be a JSON object of threshold overrides, "
            f"got {type(overrides).__name__}",
            field=field,
            value=overrides,
        )
    try:
        return Policy(**overrides)
    except ValidationError as exc:
        raise _policy_error(exc, field) from None


def _decode(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{field} is not valid JSON ({exc.msg} at position {exc.pos}); "
            'send an object such as {"min_coverage": 0.9}',
            field=field,
            value=text,
        ) from None


def _policy_error(exc: ValidationError, field: str) -> InputError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        known = ", ".join(Policy.model_fields)
        message = f"unknown policy key {key!r}; known keys: {known}"
    else:
        message = f"invalid policy value for {key!r}: {first['msg']}"
        if _looks_like_percent(first.get("input")):
            message += " (thresholds are fractions: write 0.95, not 95)"
    return InputError(message, field=f"{field}.{key}", value=first.get("input"))


def _looks_like_percent(value: Any) -> bool:
    return isinstance(value, int | float) and 1.0 < value <= 100.0
