"""Progress reports of long data-gate runs: a stage name and the fraction done."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, float], None]

# A stage reports again only after this much more of it is done, so a loop over
# thousands of chunks calls the callback about 50 times.
_STEP = 0.02


class Progress:
    """Forward ``(stage, fraction)`` reports to an optional callback.

    Reports within one stage are thinned to steps of 2%. The start (0.0) and the
    end (1.0) of a stage are always reported.
    """

    def __init__(self, callback: ProgressFn | None) -> None:
        self._callback = callback
        self._stage = ""
        self._last = -1.0

    def start(self, stage: str) -> None:
        self._stage = stage
        self._last = -1.0
        self.update(0.0)

    def update(self, fraction: float) -> None:
        if self._callback is None:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < 1.0 and fraction - self._last < _STEP:
            return
        self._last = fraction
        self._callback(self._stage, fraction)

    def done(self) -> None:
        self.update(1.0)

    def part(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` work items of the current stage."""
        self.update(done / total if total else 1.0)


SILENT = Progress(None)
