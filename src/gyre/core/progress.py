"""A small progress interface, so stages report long work without importing a UI.

Stages call ``progress.task("Ingesting rentals", total=24)`` and ``advance()`` on the handle;
the CLI passes a Rich implementation, tests and the Python API get the silent default.
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def update(self, *, description: str | None = None, total: float | None = None) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> ProgressTask: ...

    def log(self, message: str) -> None: ...


class _SilentTask:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, *, description: str | None = None, total: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class SilentProgress:
    """Reports nothing: the default for the Python API and tests."""

    def task(self, description: str, total: float | None = None) -> ProgressTask:
        return _SilentTask()

    def log(self, message: str) -> None:
        pass
