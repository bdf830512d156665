"""Tracked runs: every step Gyre executes is a run with params, metrics, inputs and outputs.

    with track_run(ctx, kind="train", job="demand", params=params) as run:
        run.input(dataset_node("features", 3))
        ...
        run.output(model_node("demand", 2))
        run.metrics["mae"] = 41.2

Entering records the run as *running* and emits an OpenLineage START event; leaving records it
as *completed* (COMPLETE) or, if an exception escapes, *failed* with the error (FAIL) and
re-raises. Lineage edges are written as soon as a node is declared, so a crash still leaves the
partial graph for debugging.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gyre.core.openlineage import DatasetRef, build_run_event

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.core.store.records import RunRecord

OL_NAMESPACE = "gyre"
_TRACKED_PACKAGES = ("gyre", "pyarrow", "duckdb", "lightgbm", "scikit-learn", "numpy", "scipy")


def code_hash(paths: Iterable[Path], *, extra: str = "") -> str:
    """A hash of the files that define a step (SQL, contract, config) plus Gyre's version."""
    digest = hashlib.sha256()
    digest.update(_package_version("gyre").encode())
    digest.update(extra.encode())
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return "sha256:" + digest.hexdigest()


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def environment() -> dict[str, Any]:
    """What a run needs to be reproduced: interpreter, platform and key package versions."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _package_version(name) for name in _TRACKED_PACKAGES},
    }


@dataclass
class TrackedRun:
    """The live handle a step uses to declare what it read and wrote."""

    ctx: StageContext
    record: RunRecord
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    _ol_inputs: list[DatasetRef] = field(default_factory=list)
    _ol_outputs: list[DatasetRef] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.record.id

    def input(self, node: str, *, version: str | None = None) -> None:
        self._link(node, role="input", version=version)

    def output(self, node: str, *, version: str | None = None) -> None:
        self._link(node, role="output", version=version)

    def _link(self, node: str, *, role: str, version: str | None) -> None:
        with self.ctx.store.transaction() as conn:
            if role == "input":
                self.ctx.store.lineage.record(conn, self.id, inputs=[node])
            else:
                self.ctx.store.lineage.record(conn, self.id, outputs=[node])
        ref = DatasetRef(namespace=OL_NAMESPACE, name=node, version=version)
        if role == "input":
            self.inputs.append(node)
            self._ol_inputs.append(ref)
        else:
            self.outputs.append(node)
            self._ol_outputs.append(ref)


@contextmanager
def track_run(
    ctx: StageContext,
    *,
    kind: str,
    job: str,
    params: dict[str, Any] | None = None,
    code: str | None = None,
) -> Iterator[TrackedRun]:
    store = ctx.store
    record = store.runs.start(
        kind=kind, job=job, params=params or {}, code_hash=code, environment=environment()
    )
    run = TrackedRun(ctx=ctx, record=record)
    job_name = f"{ctx.project}.{kind}.{job}"

    def emit(event_type: Literal["START", "COMPLETE", "FAIL"], error: str | None = None) -> None:
        started = event_type == "START"
        ctx.emitter.emit(
            build_run_event(
                event_type,
                run_id=run.id,
                job_namespace=OL_NAMESPACE,
                job_name=job_name,
                inputs=[] if started else run._ol_inputs,
                outputs=[] if started else run._ol_outputs,
                event_time=datetime.now(UTC),
                error_message=error,
            )
        )

    try:
        emit("START")
    except BaseException as exc:
        # Never leave a run that did not start looking "running" forever.
        store.runs.finish(run.id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    try:
        yield run
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        store.runs.finish(run.id, status="failed", metrics=run.metrics, error=message)
        emit("FAIL", message)
        raise
    run.record = store.runs.finish(run.id, status="completed", metrics=run.metrics)
    emit("COMPLETE")
