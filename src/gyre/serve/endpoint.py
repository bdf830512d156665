"""Serving a configured endpoint: the OIP v2 app wired to the store, artifacts and monitor.

The app resolves the endpoint's alias in the metadata store every ``poll_interval`` seconds,
so promoting or rolling back a version changes what is served without a restart. Every
successful inference is written to the monitor's inference log (one row per prediction with
its inputs, output, model version and latency); ``POST /api/logs/flush`` makes buffered records
durable at once, which the loop calls before it evaluates a window.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from gyre.core.errors import NotFoundError

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from gyre.core.context import StageContext
    from gyre.monitor.inference_log import InferenceLog
    from gyre.serve.app import InferenceEvent, ModelRef


def inference_table(event: InferenceEvent) -> Any:
    """The inference log rows for one request: one row per prediction."""
    import numpy as np
    import pyarrow as pa

    n = len(event.outputs)
    columns: dict[str, Any] = {
        "request_id": pa.array([event.request_id] * n, pa.string()),
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "time": pa.array([event.time] * n, pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array([event.endpoint] * n, pa.string()),
        "model": pa.array([event.model_name] * n, pa.string()),
        "model_version": pa.array([event.model_version] * n, pa.int64()),
        "latency_ms": pa.array([event.latency_ms] * n, pa.float64()),
    }
    outputs = np.asarray(event.outputs)
    if outputs.dtype.kind in "biuf":
        columns["output"] = pa.array(outputs.astype(np.float64))
    else:  # class labels of a classifier
        columns["output"] = pa.nulls(n, pa.float64())
        columns["output_label"] = pa.array([str(v) for v in outputs], pa.string())
    for name, values in event.inputs.items():
        array = np.asarray(values)
        if array.dtype.kind in "biuf":
            columns[f"in__{name}"] = pa.array(array.astype(np.float64))
        else:
            columns[f"in__{name}"] = pa.array([str(v) for v in array], pa.string())
    return pa.table(columns)


def build_app(
    ctx: StageContext, endpoint: str, *, poll_interval: float = 1.0, log: InferenceLog | None = None
) -> FastAPI:
    from gyre.models.packaging import load_model
    from gyre.monitor.inference_log import InferenceLog
    from gyre.serve.app import ModelRef, create_app

    config = ctx.config.endpoint(endpoint)
    inference_log = log or InferenceLog(ctx.paths.inference_logs)
    store = ctx.store

    def resolve() -> ModelRef | None:
        current = store.models.alias(config.model, config.alias)
        if current is None:
            return None
        return ModelRef(config.model, current.version, current.package_id)

    def resolve_version(version: int) -> ModelRef | None:
        try:
            record = store.models.version(config.model, version)
        except NotFoundError:
            return None  # the app answers 404 with the versions it has
        return ModelRef(config.model, record.version, record.package_id)

    def load(ref: ModelRef) -> Any:
        return load_model(ctx.artifacts, ref.package_id)

    def on_inference(event: InferenceEvent) -> None:
        inference_log.append(inference_table(event))

    if resolve() is None:
        raise NotFoundError(
            f"endpoint '{endpoint}' serves {config.model}@{config.alias}, which is not set yet",
            hint=f"train and promote a version first: `gyre train {config.model}`",
        )
    app = create_app(
        endpoint,
        resolve,
        load,
        on_inference=on_inference,
        poll_interval=poll_interval,
        resolve_version=resolve_version,
    )

    @app.post("/api/logs/flush")
    def flush() -> dict[str, Any]:
        """Write buffered inference records to Parquet now."""
        inference_log.flush()
        return {"flushed": True}

    return app


def serve_endpoint(
    ctx: StageContext,
    endpoint: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    poll_interval: float = 1.0,
    flush_interval: float = 5.0,
) -> None:
    """Serve ``endpoint`` until SIGTERM/SIGINT (buffered inference records are flushed)."""
    from gyre.monitor.inference_log import InferenceLog
    from gyre.serve.server import run_server

    log = InferenceLog(ctx.paths.inference_logs)
    app = build_app(ctx, endpoint, poll_interval=poll_interval, log=log)
    stop = threading.Event()
    flusher = threading.Thread(
        target=_flush_periodically,
        args=(log, stop, flush_interval),
        daemon=True,
        name="gyre-inference-flush",
    )
    flusher.start()
    try:
        run_server(app, host, port, log_level="warning")
    finally:
        # uvicorn returns after draining requests on SIGTERM/SIGINT: nothing logged is lost.
        stop.set()
        flusher.join(timeout=flush_interval + 5)
        log.flush()


def _flush_periodically(log: InferenceLog, stop: threading.Event, interval: float) -> None:
    """Make buffered records durable every ``interval`` seconds, even when traffic stops.

    The log also flushes by size and age when records arrive; this covers a quiet server.
    """
    while not stop.wait(interval):
        try:
            log.flush()
        except Exception:  # keep serving; the next attempt retries the same buffered rows
            _log.exception("periodic flush of the inference log failed")
