"""Model children started ahead of the next gate.

A model child spends about 0.3 s starting Python and importing numpy and
onnxruntime before it can load a model. A gate that finds waiting children
skips that wait. Each child still serves one gate only, so every gate measures
fresh processes, and the memory protocol does not change.

A gate takes its children from the pool when their limits match its settings,
and requests replacements as it ends. The replacements start on the pool's own
thread: a model child is killed when the thread that started it exits (see
``model_child``), and that thread lives as long as the process. The pool keeps
at most one child per subject, for the limits of the last request; children
started for other limits are stopped.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import tempfile
import threading
from pathlib import Path

from app.evaluation.model_probe import ChildProcess, ProbeSettings

logger = logging.getLogger(__name__)

_Request = tuple[tuple[str, ...], ProbeSettings] | None


class SparePool:
    """Started model children waiting for a gate, one per subject at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: str | None = None
        self._children: dict[str, ChildProcess] = {}
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def take(self, subject: str, settings: ProbeSettings) -> ChildProcess | None:
        """Return a waiting child with the limits of ``settings``, or None."""
        with self._lock:
            if self._key != _limits_key(settings):
                return None
            child = self._children.pop(subject, None)
        if child is None:
            return None
        if child.process.poll() is not None:
            logger.info(
                "model_child.spare_exited subject=%s pid=%d exit_code=%s",
                subject,
                child.process.pid,
                child.process.returncode,
            )
            child.stop()
            return None
        child.subject = subject
        child.timeout_s = settings.timeout_s
        return child

    def waiting(self) -> dict[str, int]:
        """Return the process id of each waiting child, by subject."""
        with self._lock:
            return {
                subject: child.process.pid for subject, child in self._children.items()
            }

    def refill(self, subjects: tuple[str, ...], settings: ProbeSettings) -> None:
        """Start a child for each subject the pool lacks, on the pool's thread."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="distilgate-spares", daemon=True
                )
                self._thread.start()
        self._requests.put((subjects, settings))

    def close(self) -> None:
        """Stop the pool's thread and every waiting child."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            # The thread first starts the children already requested.
            self._requests.put(None)
            thread.join()
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.stop()

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            subjects, settings = request
            try:
                self._start(subjects, settings)
            except OSError as exc:
                # The next gate starts its own children, as without a pool.
                logger.warning(
                    "model_child.spare_start_failed subjects=%s error=%s",
                    ",".join(subjects),
                    exc,
                )

    def _start(self, subjects: tuple[str, ...], settings: ProbeSettings) -> None:
        key = _limits_key(settings)
        stale: list[ChildProcess] = []
        with self._lock:
            if self._key != key:
                stale, self._children = list(self._children.values()), {}
                self._key = key
        for child in stale:
            child.stop()
        folder = Path(tempfile.gettempdir())
        with self._lock:
            for subject in subjects:
                if subject not in self._children:
                    self._children[subject] = ChildProcess(subject, settings, folder)


def _limits_key(settings: ProbeSettings) -> str:
    return json.dumps(settings.limits, sort_keys=True)


SPARES = SparePool()
atexit.register(SPARES.close)
