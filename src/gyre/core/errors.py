"""Gyre's one error tree.

Every error a user can cause or meet derives from :class:`GyreError`. The CLI turns any
``GyreError`` into one readable line and exit status 1 (2 for :class:`UsageError`), and shows the
traceback only with ``--debug``. Anything else escaping is a bug in Gyre.

    GyreError
    ├── UsageError                 bad command-line usage (exit 2)
    ├── MissingExtraError          an optional dependency is not installed
    ├── ConfigError                gyre.yaml or a contract is invalid (file, line, key)
    ├── WorkspaceError             no workspace here / already initialised
    ├── StoreError                 metadata store problems
    │   ├── NotFoundError          a named thing does not exist
    │   └── ConflictError          a concurrent or duplicate write was refused
    ├── ArtifactError              artifact store problems
    │   └── CorruptArtifactError   bytes on disk do not match their content id
    ├── DataError                  input data cannot be used
    │   ├── SourceError            a source cannot be read (file, URL, host)
    │   └── QuarantineLimitError   too many rows broke the contract; nothing committed
    ├── TrainError                 a trainer failed or was misconfigured
    ├── GateFailedError            a validation gate failed (exit 1, not a crash)
    ├── ServeError                 the model server cannot start or answer
    ├── MonitorError               monitoring cannot compute what was asked
    ├── LineageError               lineage could not be recorded or resolved
    └── AuditError                 the audit chain is broken

``retryable`` marks transient failures (a busy database, a network blip) so the loop can decide
to retry without parsing messages.
"""

from __future__ import annotations


class GyreError(Exception):
    """Root of every error Gyre raises on purpose.

    ``message`` says what went wrong and where; ``hint`` says what to do next.
    """

    retryable: bool = False
    exit_code: int = 1

    def __init__(
        self, message: str, *, hint: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(GyreError):
    exit_code = 2


class MissingExtraError(GyreError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed",
            hint=f"pip install 'gyre[{extra}]'",
        )


class ConfigError(GyreError):
    """A configuration file is invalid. Carries the file, line and dotted key."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        prefix = " ".join(p for p in (where, key) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message, hint=hint)
        self.file = file
        self.line = line
        self.key = key


class WorkspaceError(GyreError):
    pass


class StoreError(GyreError):
    pass


class NotFoundError(StoreError):
    pass


class ConflictError(StoreError):
    retryable = True


class ArtifactError(GyreError):
    pass


class CorruptArtifactError(ArtifactError):
    pass


class DataError(GyreError):
    pass


class SourceError(DataError):
    pass


class BatchRefusedError(DataError):
    """A batch refused as a whole: past the quarantine limit, outside the contract's ``rows``
    or ``freshness``, or under a ``schema_drift: freeze`` policy. Nothing of it is committed,
    unless its source sets ``on_refused_batch: quarantine`` (then all of it is quarantined)."""


class QuarantineLimitError(BatchRefusedError):
    pass


class TrainError(GyreError):
    pass


class GateFailedError(GyreError):
    pass


class ServeError(GyreError):
    pass


class MonitorError(GyreError):
    pass


class LineageError(GyreError):
    pass


class AuditError(GyreError):
    pass
