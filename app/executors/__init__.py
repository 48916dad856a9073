"""Job executors that run gates outside the API process, and their helpers."""
