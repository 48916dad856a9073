"""Reading Prometheus expositions in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def samples(body: bytes) -> dict[SampleKey, float]:
    """Map (sample name, sorted labels) to value for a text exposition."""
    parsed = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def key(name: str, **labels: str) -> SampleKey:
    """Return the ``samples`` key of one sample."""
    return (name, tuple(sorted(labels.items())))
