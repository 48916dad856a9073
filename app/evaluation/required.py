"""Required scenarios: conditions whose rows a subset must keep.

A rule is a mapping of column to value, and a row matches when every column
has its value. Values compare as follows:

- None matches a missing cell;
- a number matches a cell with the same numeric value, so 500 matches "500";
- a bool matches True/False cells and the text "true"/"false" in any case;
- a text matches the cell's text. Text made of digits and at least one ``x``
  is also a digit pattern: "5xx" matches 500 to 599 and the text "5xx".

A subset keeps a rule when it holds at least ``min_required_rows`` distinct
matching rows, or as many as the cleaned original holds when that is fewer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.errors import InputError
from app.evaluation.readers import suggest
from app.evaluation.scenarios import row_example

Rule = dict[str, Any]
EXAMPLES_PER_RULE = 3
_PATTERN = re.compile(r"[0-9xX]*[xX][0-9xX]*")


@dataclass(frozen=True)
class RuleResult:
    """How many rows of one rule the original and the subset hold."""

    rule: Rule
    original_rows: int
    required: int
    subset_rows: int
    examples: list[dict[str, Any]]

    @property
    def kept(self) -> bool:
        return self.subset_rows >= self.required

    def to_dict(self) -> dict[str, Any]:
        entry = {
            "rule": self.rule,
            "original_rows": self.original_rows,
            "required_rows": self.required,
            "subset_rows": self.subset_rows,
            "kept": self.kept,
        }
        if not self.kept:
            entry["examples"] = self.examples
        if self.original_rows == 0:
            entry["note"] = "matches no row of the original; check the values"
        return entry


def validate_rules(rules: Sequence[Rule], columns: Sequence[str]) -> None:
    """Reject a rule that names a column the original does not have.

    Raises:
        InputError: naming the rule by its position and showing it.
    """
    available = [str(c) for c in columns]
    for index, rule in enumerate(rules):
        unknown = [name for name in rule if name not in set(columns)]
        if not unknown:
            continue
        raise InputError(
            f"required_scenarios rule {index} {rule!r} names column "
            f"{unknown[0]!r}, which is not in the original; available columns: "
            f"{available[:50]}{suggest(unknown[0], available)}",
            field=f"policy.required_scenarios.{index}",
            value=rule,
        )


def rule_mask(frame: pd.DataFrame, rule: Rule) -> np.ndarray:
    """Mark the rows of ``frame`` that match every condition of ``rule``."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in rule.items():
        mask &= _matches(frame[column], value)
    return mask


def evaluate_rules(
    rules: Sequence[Rule],
    original: pd.DataFrame,
    kept_rows: np.ndarray,
    subset: pd.DataFrame,
    hashes: tuple[np.ndarray, np.ndarray],
    min_rows: int,
) -> list[RuleResult]:
    """Count each rule's rows in the cleaned original and the subset.

    ``kept_rows`` are the positions of the cleaned original's rows and
    ``hashes`` the row hashes of both tables. Subset rows count once per
    distinct row.
    """
    original_hashes, subset_hashes = hashes
    results = []
    for rule in rules:
        in_original = kept_rows[rule_mask(original.iloc[kept_rows], rule)]
        matching = rule_mask(subset, rule)
        subset_rows = len(np.unique(subset_hashes[matching]))
        absent = in_original[~np.isin(original_hashes[in_original], subset_hashes)]
        lost = [
            row_example(original, int(row), list(rule))
            for row in absent[:EXAMPLES_PER_RULE]
        ]
        results.append(
            RuleResult(
                rule=dict(rule),
                original_rows=len(in_original),
                required=min(min_rows, len(in_original)),
                subset_rows=subset_rows,
                examples=lost,
            )
        )
    return results


def describe_rule(rule: Rule) -> str:
    """Show a rule as ``column=value and column=value``."""
    return " and ".join(f"{column}={value!r}" for column, value in rule.items())


def _matches(column: pd.Series, value: Any) -> np.ndarray:
    missing = np.asarray(column.isna().to_numpy())
    if value is None:
        return missing
    if isinstance(value, bool):
        if column.dtype.kind == "b":
            return np.asarray((column.to_numpy() == value) & ~missing)
        return np.asarray(_text(column) == str(value).lower())
    if isinstance(value, int | float):
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        return np.asarray(numbers == float(value))
    text = str(value)
    matched = _text(column, lower=False) == text
    if _PATTERN.fullmatch(text):
        pattern = text.lower().replace("x", "[0-9]")
        texts = pd.Series(_text(column, lower=False), dtype=object)
        matched |= texts.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
    return np.asarray(matched & ~missing)


def _text(column: pd.Series, *, lower: bool = True) -> np.ndarray:
    """Return each cell as text, whole numbers without a decimal point."""
    texts: np.ndarray = column.astype(str).to_numpy(dtype=object)
    if column.dtype.kind == "f":
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(values) & (values == np.round(values))
        texts[whole] = values[whole].astype(np.int64).astype(str)
    if lower:
        texts = np.array([text.lower() for text in texts], dtype=object)
    return texts
