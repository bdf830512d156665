"""OpenLineage RunEvents for every Gyre run, written locally and optionally sent over HTTP.

Gyre keeps its own lineage graph in the metadata store; this module speaks the open standard so
Marquez, DataHub, OpenMetadata or any OpenLineage consumer can see the same runs. Each run emits a
START event and then exactly one COMPLETE or FAIL event, following core spec 2-0-2:

    emitter = LineageEmitter(Path(".gyre/lineage/events.jsonl"), http_url=None)
    run_id = str(uuid.uuid4())
    emitter.emit(build_run_event("START", run_id=run_id, job_namespace="gyre://demo",
                                 job_name="train.churn", inputs=[features], outputs=[]))
    ...
    emitter.emit(build_run_event("COMPLETE", run_id=run_id, ..., outputs=[model]))

The local JSONL file is the record of truth: an event that cannot be appended there raises
:class:`LineageError`. The HTTP endpoint is best effort: a network error or non-2xx reply never
fails the run; the event lands in ``events.failed.jsonl`` next to the main file (with the URL and
the error) so it can be replayed, and a warning is logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from gyre.core.errors import LineageError

__all__ = [
    "DEFAULT_PRODUCER",
    "RUN_EVENT_SCHEMA_URL",
    "DatasetRef",
    "EventType",
    "LineageEmitter",
    "SchemaField",
    "build_run_event",
]

log = logging.getLogger(__name__)

EventType = Literal["START", "COMPLETE", "FAIL"]

DEFAULT_PRODUCER: Final = "https://github.com/gyre-ml/gyre"
RUN_EVENT_SCHEMA_URL: Final = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
# Facet schema versions Gyre stamps into `_schemaURL`. They are published, immutable documents;
# the vendored copies in tests/fixtures/openlineage/ are validated against in the test suite.
SCHEMA_FACET_URL: Final = (
    "https://openlineage.io/spec/facets/1-0-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
)
VERSION_FACET_URL: Final = (
    "https://openlineage.io/spec/facets/1-0-0/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet"
)
ERROR_FACET_URL: Final = (
    "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
_EVENT_TYPES: Final = ("START", "COMPLETE", "FAIL")


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One column of a dataset as the OpenLineage schema facet describes it."""

    name: str
    type: str


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset as lineage sees it: where it lives, its columns, and which version was used.

    ``version`` is Gyre's content id (``b3:<hex>``) of the dataset version; it becomes the
    ``version`` facet so two runs that read different versions of one dataset stay apart.
    """

    namespace: str
    name: str
    fields: tuple[SchemaField, ...] = ()
    version: str | None = None


def _utc_timestamp(when: datetime | None) -> str:
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise LineageError(
            f"event_time {when.isoformat()} has no time zone",
            hint="pass an aware datetime, e.g. datetime.now(UTC)",
        )
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _facet(producer: str, schema_url: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema_url, **fields}


def _dataset(ref: DatasetRef, producer: str) -> dict[str, Any]:
    if not ref.namespace or not ref.name:
        raise LineageError(
            f"dataset reference {ref!r} needs both a namespace and a name",
            hint="use the dataset's store URL as namespace and its name as name",
        )
    facets: dict[str, Any] = {}
    if ref.fields:
        facets["schema"] = _facet(
            producer,
            SCHEMA_FACET_URL,
            fields=[{"name": f.name, "type": f.type} for f in ref.fields],
        )
    if ref.version is not None:
        facets["version"] = _facet(producer, VERSION_FACET_URL, datasetVersion=ref.version)
    return {"namespace": ref.namespace, "name": ref.name, "facets": facets}


def _custom_facets(
    facets: Mapping[str, Mapping[str, Any]] | None, producer: str, where: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, facet in (facets or {}).items():
        if "_schemaURL" not in facet:
            raise LineageError(
                f"{where} facet '{name}' has no _schemaURL",
                hint="every OpenLineage facet must name the JSON schema that describes it",
            )
        out[name] = {"_producer": producer, **facet}
    return out


def build_run_event(
    event_type: EventType,
    *,
    run_id: str,
    job_namespace: str,
    job_name: str,
    inputs: Sequence[DatasetRef] = (),
    outputs: Sequence[DatasetRef] = (),
    event_time: datetime | None = None,
    error_message: str | None = None,
    stack_trace: str | None = None,
    producer: str = DEFAULT_PRODUCER,
    run_facets: Mapping[str, Mapping[str, Any]] | None = None,
    job_facets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One OpenLineage 2-0-2 RunEvent as a JSON-ready dict.

    A FAIL event must carry ``error_message`` (it becomes the ``errorMessage`` run facet, with
    ``stack_trace`` if given); the other event types must not. ``run_facets`` and ``job_facets``
    add custom facets by name; each needs a ``_schemaURL`` and gets ``_producer`` filled in.
    """
    if event_type not in _EVENT_TYPES:
        raise LineageError(
            f"unknown OpenLineage event type {event_type!r}",
            hint="a Gyre run emits START, then COMPLETE or FAIL",
        )
    try:
        run_uuid = uuid.UUID(run_id)
    except (ValueError, AttributeError, TypeError):
        raise LineageError(
            f"run_id {run_id!r} is not a UUID",
            hint="OpenLineage run ids are UUIDs; use str(uuid.uuid4()) once per run",
        ) from None
    if not job_namespace or not job_name:
        raise LineageError("an OpenLineage job needs both a namespace and a name")

    facets = _custom_facets(run_facets, producer, "run")
    if event_type == "FAIL":
        if not error_message:
            raise LineageError(
                f"FAIL event for run {run_id} has no error_message",
                hint="pass the error that ended the run as error_message=",
            )
        error: dict[str, Any] = {"message": error_message, "programmingLanguage": "PYTHON"}
        if stack_trace:
            error["stackTrace"] = stack_trace
        facets["errorMessage"] = _facet(producer, ERROR_FACET_URL, **error)
    elif error_message is not None or stack_trace is not None:
        raise LineageError(
            f"{event_type} event for run {run_id} was given an error message",
            hint="only FAIL events carry error_message and stack_trace",
        )

    return {
        "eventType": event_type,
        "eventTime": _utc_timestamp(event_time),
        "run": {"runId": str(run_uuid), "facets": facets},
        "job": {
            "namespace": job_namespace,
            "name": job_name,
            "facets": _custom_facets(job_facets, producer, "job"),
        },
        "inputs": [_dataset(ref, producer) for ref in inputs],
        "outputs": [_dataset(ref, producer) for ref in outputs],
        "producer": producer,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
    }


def _append_line(path: Path, line: bytes) -> None:
    """Append one line so that concurrent writers, threads or processes, never interleave.

    O_APPEND makes every write land at the current end of file; the exclusive flock makes the
    whole line one critical section even where a single write(2) could be split (large lines,
    network file systems). fsync before unlocking so a crash never leaves half a line behind a
    complete one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _flock(fd, lock=True)
        try:
            view = memoryview(line)
            written = os.write(fd, view)
            while written < len(view):  # a short write is rare, but under the lock it is safe
                written += os.write(fd, view[written:])
            os.fsync(fd)
        finally:
            _flock(fd, lock=False)
    finally:
        os.close(fd)


def _flock(fd: int, *, lock: bool) -> None:
    # Windows has no flock; there O_APPEND and one write call per line are all we rely on.
    if sys.platform != "win32":
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


class LineageEmitter:
    """Append RunEvents to a JSONL file and, when configured, POST them to an HTTP endpoint.

    ``http_url`` is the full endpoint URL (for Marquez: ``http://host:5000/api/v1/lineage``).
    """

    def __init__(self, jsonl_path: Path, http_url: str | None = None, timeout: float = 2.0) -> None:
        self.jsonl_path = Path(jsonl_path)
        self.http_url = http_url
        self.timeout = timeout

    @property
    def failed_path(self) -> Path:
        """Where events that could not be sent over HTTP are kept, next to the main file."""
        return self.jsonl_path.with_name(f"{self.jsonl_path.stem}.failed.jsonl")

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Record ``event``; return False if the HTTP transport failed (it is then kept aside)."""
        try:
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        except (TypeError, ValueError) as exc:
            raise LineageError(
                f"OpenLineage event cannot be written as JSON: {exc}",
                hint="facet values must be JSON types (str, int, float, bool, list, dict, None)",
            ) from exc
        try:
            _append_line(self.jsonl_path, line.encode("utf-8"))
        except OSError as exc:
            raise LineageError(
                f"cannot append lineage event to {self.jsonl_path}: {exc.strerror or exc}",
                hint="check that the folder exists and is writable",
            ) from exc
        if self.http_url is None:
            return True
        return self._post(line, event)

    def _post(self, line: str, event: Mapping[str, Any]) -> bool:
        import httpx

        try:
            response = httpx.post(
                self.http_url or "",
                content=line.encode("utf-8"),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "OpenLineage event for run %s not delivered to %s (%s); kept in %s",
                event.get("run", {}).get("runId"),
                self.http_url,
                reason,
                self.failed_path,
            )
            record = {
                "failedAt": _utc_timestamp(None),
                "url": self.http_url,
                "error": reason,
                "event": event,
            }
            try:
                _append_line(
                    self.failed_path,
                    (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode(),
                )
            except OSError as write_exc:  # the event is still in the main file
                log.warning("cannot record failed delivery in %s: %s", self.failed_path, write_exc)
            return False
        return True
