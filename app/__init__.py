"""DistilGate: a quality gate for distilled datasets and distilled models."""

__version__ = "0.1.0"
