"""Gate thresholds: the documented defaults and the validation of overrides."""

from __future__ import annotations

import json
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.errors import InputError

Resource = Literal["size", "latency", "memory"]
ALL_RESOURCES: tuple[Resource, ...] = ("size", "latency", "memory")
Task = Literal["classification", "binary", "regression"]
LossMode = Literal["absolute", "relative"]
ModelRole = Literal["teacher", "student"]
# One name for both models, or a name per model: {"teacher": "x", "student": "y"}.
TensorName = str | dict[ModelRole, str]
ScenarioValue = str | int | float | bool | None


class Policy(BaseModel):
    """Thresholds a gate applies. Every ratio is a fraction: 0.95, never 95."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    task: Task | None = Field(
        None,
        description="Model gate task; inferred from the labels and outputs if unset.",
    )
    decision_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Binary task: class 1 when its probability is at least this.",
    )
    accuracy_loss_mode: LossMode = Field(
        "absolute",
        description="Which accuracy loss gates: teacher - student (absolute) or "
        "(teacher - student) / teacher (relative).",
    )
    max_class_drop: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Maximum accuracy drop of any one class; unset: not gated.",
    )
    min_class_rows: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="Classes with fewer evaluation rows are reported, not judged.",
    )
    input_name: TensorName | None = Field(
        None,
        description="Model input the dataset feeds; needed when a model has "
        "several inputs.",
    )
    output_name: TensorName | None = Field(
        None,
        description="Model output that gives the predictions; overrides the choice "
        "by type.",
    )
    t_way: int = Field(
        2,
        ge=2,
        le=4,
        description="Data gate: 2 checks value pairs of the scenario columns "
        "(pairwise_coverage); 3 or 4 also checks every 3 or 4 columns together "
        "(t_way_coverage).",
    )
    required_scenarios: list[dict[str, ScenarioValue]] = Field(
        default_factory=list,
        max_length=1000,
        description="Data gate: conditions the subset must keep rows of, each an "
        'object of column: value pairs that must all hold, e.g. {"status": '
        '"failed"}. A text of digits and x such as "5xx" matches any digit for x.',
    )
    min_required_rows: int = Field(
        3,
        ge=1,
        le=1_000_000,
        description="Data gate: distinct rows the subset keeps of each required "
        "scenario, or all the original has when fewer.",
    )
    edge_case_gated: bool = Field(
        False,
        description="Data gate: fail, not warn, when the edge-case share is "
        "outside edge_case_share.",
    )
    coverage_margin: float = Field(
        0.10,
        ge=0.0,
        le=0.5,
        description="Data gate: how far below min_coverage a uniformly random "
        "subset of the same size must score; sets k of feature_coverage.",
    )
    coverage_neighbours: int | None = Field(
        None,
        ge=1,
        le=50,
        description="Data gate: k of feature_coverage; unset: the largest k that "
        "keeps coverage_margin.",
    )
    near_duplicate_ratio: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Data gate: rows of one scenario closer than this times the "
        "median nearest-neighbour distance are near-duplicates; 0 turns it off.",
    )
    text_column: str | None = Field(
        None,
        min_length=1,
        description="Data gate: a column of free text, encoded by TF-IDF and "
        "truncated SVD instead of one-hot categories.",
    )
    text_columns: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Data gate: more columns of free text, encoded like text_column.",
    )
    pca_components: int | float | None = Field(
        None,
        description="Data gate: reduce the features by PCA before coverage is "
        "measured, to this many components (an integer from 1 to 1000) or to the "
        "components that explain this fraction of the variance (between 0 and 1); "
        "unset: no PCA.",
    )

    @field_validator("input_name", "output_name", mode="before")
    @classmethod
    def _check_names(cls, value: Any) -> Any:
        if value is None:
            return None
        names = value.values() if isinstance(value, dict) else [value]
        if isinstance(value, dict) and not set(value) <= {"teacher", "student"}:
            unknown = sorted(str(key) for key in set(value) - {"teacher", "student"})
            raise ValueError(
                f"expected the keys 'teacher' and 'student', got {unknown}"
            )
        if not all(isinstance(name, str) and name.strip() for name in names):
            raise ValueError(
                'expected a tensor name or {"teacher": name, "student": name}'
            )
        return value

    def tensor_name(
        self, key: Literal["input_name", "output_name"], role: str
    ) -> str | None:
        """Return the ``input_name`` or ``output_name`` that applies to ``role``."""
        value: TensorName | None = getattr(self, key)
        if isinstance(value, dict):
            return value.get(cast(ModelRole, role))
        return value

    @field_validator("required_scenarios")
    @classmethod
    def _check_rules(
        cls, value: list[dict[str, ScenarioValue]]
    ) -> list[dict[str, ScenarioValue]]:
        for index, rule in enumerate(value):
            if not rule:
                raise ValueError(
                    f"rule {index} is empty; expected an object of column: value "
                    'conditions such as {"status": "failed"}'
                )
        return value

    @field_validator(
        "min_coverage",
        "max_accuracy_loss",
        "min_reduction",
        "max_param_ratio",
        "decision_threshold",
        "max_class_drop",
        "coverage_margin",
        "near_duplicate_ratio",
        "edge_case_share",
        mode="before",
    )
    @classmethod
    def _reject_text_and_booleans(cls, value: Any) -> Any:
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, bool | str):
                raise ValueError(f"expected a number, got {type(item).__name__}")
        return value

    @field_validator("edge_case_share")
    @classmethod
    def _check_share_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value

    @field_validator("pca_components", mode="before")
    @classmethod
    def _check_components(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"expected an integer or a fraction, got {type(value).__name__}"
            )
        if isinstance(value, int) and not 1 <= value <= 1000:
            raise ValueError("expected a component count from 1 to 1000")
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError(
                "expected a fraction of variance between 0 and 1 (exclusive), or "
                "an integer component count"
            )
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
        if key in FRACTION_KEYS and _looks_like_percent(first.get("input")):
            message += " (thresholds are fractions: write 0.95, not 95)"
    return InputError(message, field=f"{field}.{key}", value=first.get("input"))


FRACTION_KEYS = frozenset(
    {
        "min_coverage",
        "max_accuracy_loss",
        "min_reduction",
        "max_class_drop",
        "coverage_margin",
        "edge_case_share",
        "edge_case_share.0",
        "edge_case_share.1",
    }
)


def _looks_like_percent(value: Any) -> bool:
    return isinstance(value, int | float) and 1.0 < value <= 100.0
