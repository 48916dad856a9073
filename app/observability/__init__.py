"""Metrics and structured logs of the service, the CLI and the workers."""
