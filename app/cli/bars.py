"""Progress bars on stderr for gates and distillations that take a while."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

WAITING = "waiting for the verdict"


class StageBars:
    """One bar per reported stage, shown only on a terminal.

    Until the first stage is reported, a single bar without a total shows that
    the verdict is awaited: model gates report no stages. ``show`` may be
    called from another thread.
    """

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description:<23}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._task: TaskID | None = None
        self._waiting: TaskID | None = None

    def __enter__(self) -> StageBars:
        self._progress.start()
        self._waiting = self._progress.add_task(WAITING, total=None)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            if self._task is not None and error is None:
                self._progress.update(self._task, completed=100)
            self._stop_waiting()
        self._progress.stop()

    def show(self, progress: dict[str, Any] | None) -> None:
        """Move the bar of the reported stage, starting a new bar for a new stage."""
        if not progress or not progress.get("stage"):
            return
        stage = str(progress["stage"])
        fraction = float(progress.get("fraction") or 0.0)
        with self._lock:
            self._stop_waiting()
            if stage != self._stage:
                if self._task is not None:
                    self._progress.update(self._task, completed=100)
                self._task = self._progress.add_task(stage, total=100)
                self._stage = stage
            assert self._task is not None
            self._progress.update(self._task, completed=100 * fraction)

    def _stop_waiting(self) -> None:
        if self._waiting is not None:
            self._progress.remove_task(self._waiting)
            self._waiting = None
