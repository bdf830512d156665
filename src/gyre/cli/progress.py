"""Rich progress bars behind the stage-agnostic :class:`gyre.core.progress.Progress`."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from gyre.cli.output import err_console


class _Task:
    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, *, description: str | None = None, total: float | None = None) -> None:
        self._progress.update(self._id, description=description, total=total)

    def close(self) -> None:
        task = self._progress.tasks[self._id]
        if task.total is not None:
            self._progress.update(self._id, completed=task.total)
        self._progress.stop_task(self._id)


class RichProgress:
    """Progress bars on stderr, so ``--json`` output on stdout stays clean."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def task(self, description: str, total: float | None = None) -> _Task:
        return _Task(self._progress, self._progress.add_task(description, total=total))

    def log(self, message: str) -> None:
        self._progress.console.print(message)
