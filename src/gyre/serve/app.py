"""The data-plane HTTP app: one endpoint's current model, served over Open Inference Protocol v2.

    app = create_app("bikes", resolve=lambda: registry.champion("bikes"),
                     load=lambda ref: load_model(store, ref.package_id))
    run_server(app, "127.0.0.1", 8080)

The app knows nothing about registries or stores: ``resolve()`` says which model version the
endpoint should serve now (a :class:`ModelRef`, or ``None`` before the first deployment) and
``load(ref)`` turns it into a :class:`~gyre.models.LoadedModel`. A background task calls
``resolve`` every ``poll_interval`` seconds and, when the package changes, loads the new one
*before* swapping a single reference, so requests in flight finish on the model they started
with and a new champion is served without a restart or a failed request. Requests that name
another version load it on demand (via ``resolve_version``) and keep a few in a small cache.

Routes follow OIP v2 (KServe v2 / Triton): ``/v2/health/live``, ``/v2/health/ready``, ``/v2``,
``/v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready`` and ``.../infer``; the model name
in the URL is the endpoint name. ``/metrics`` exposes Prometheus counters and latency histograms
from a registry private to this app, so two apps in one process never collide. After each
successful inference ``on_inference`` receives an :class:`InferenceEvent` (off the request's
critical path) so the monitor can log it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gyre.core.errors import DataError
from gyre.models.packaging import LoadedModel
from gyre.models.signature import NUMERIC_DATATYPES
from gyre.serve.oip import (
    BINARY_HEADER,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ProtocolError,
    ResponseOutput,
    ServerMetadata,
    TensorMetadata,
    decode_tensor,
    encode_output,
    parse_request,
)

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"


class ModelRef(NamedTuple):
    """Which model version to serve: registered model name, version number, package id."""

    name: str
    version: int
    package_id: str


@dataclass(frozen=True)
class InferenceEvent:
    """One successful inference, as handed to ``on_inference``."""

    request_id: str
    time: datetime
    endpoint: str
    model_name: str
    model_version: int
    latency_ms: float
    inputs: dict[str, npt.NDArray[Any]]
    outputs: npt.NDArray[Any]


class Served(NamedTuple):
    ref: ModelRef
    model: LoadedModel


Resolve = Callable[[], ModelRef | None]
ResolveVersion = Callable[[int], ModelRef | None]
Load = Callable[[ModelRef], LoadedModel]


class ModelHolder:
    """The endpoint's current model plus a small LRU cache of other versions."""

    def __init__(
        self,
        endpoint: str,
        resolve: Resolve,
        load: Load,
        resolve_version: ResolveVersion | None,
        cache_size: int,
    ) -> None:
        self.endpoint = endpoint
        self._resolve = resolve
        self._load = load
        self._resolve_version = resolve_version
        self._cache: OrderedDict[int, Served] = OrderedDict()
        self._cache_size = max(cache_size, 0)
        self._load_lock = asyncio.Lock()
        self.current: Served | None = None
        self.last_error: str | None = None

    def _remember(self, served: Served) -> None:
        self._cache[served.ref.version] = served
        self._cache.move_to_end(served.ref.version)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def versions(self) -> list[int]:
        found = set(self._cache)
        if self.current is not None:
            found.add(self.current.ref.version)
        return sorted(found)

    async def _load_ref(self, ref: ModelRef) -> Served:
        for known in [self.current, *self._cache.values()]:
            if known is not None and known.ref.package_id == ref.package_id:
                return Served(ref, known.model)  # same package, maybe a new version number
        model = await run_in_threadpool(self._load, ref)
        return Served(ref, model)

    async def refresh(self) -> bool:
        """Ask ``resolve`` what to serve; load and swap in a new package. True if swapped.

        ``None`` from ``resolve`` keeps whatever is served: an endpoint whose alias was removed
        goes on answering with its last model rather than failing every request.
        """
        ref = await run_in_threadpool(self._resolve)
        current = self.current
        if ref is None or (current is not None and current.ref == ref):
            return False
        async with self._load_lock:
            served = await self._load_ref(ref)
            if current is not None:
                self._remember(current)
            self._cache.pop(ref.version, None)
            self.current = served  # one reference assignment: the atomic swap
        log.info("endpoint %s now serves %s v%s (%s)", self.endpoint, *ref)
        return True

    async def poll_forever(self, interval: float, on_error: Callable[[], None]) -> None:
        while True:
            try:
                await self.refresh()
                self.last_error = None
            except Exception as exc:  # keep serving the old model; report and retry
                if str(exc) != self.last_error:
                    log.exception("endpoint %s: cannot resolve or load its model", self.endpoint)
                self.last_error = str(exc)
                on_error()
            await asyncio.sleep(interval)

    def require_current(self) -> Served:
        current = self.current
        if current is None:
            reason = f": {self.last_error}" if self.last_error else ""
            raise ProtocolError(
                f"model '{self.endpoint}' is not loaded yet{reason}",
                status=503,
                hint="deploy a model version to this endpoint, or retry shortly",
            )
        return current

    async def get(self, version: str | None) -> Served:
        """The current model, or the named version (loaded on demand); 404 if there is none."""
        current = self.require_current()
        if version is None:
            return current
        try:
            number = int(version)
        except ValueError:
            number = -1
        if number == current.ref.version:
            return current
        cached = self._cache.get(number)
        if cached is not None:
            self._cache.move_to_end(number)
            return cached
        ref = None
        if self._resolve_version is not None and number >= 0:
            ref = await run_in_threadpool(self._resolve_version, number)
        if ref is None:
            available = ", ".join(map(str, self.versions()))
            raise ProtocolError(
                f"version '{version}' of model '{self.endpoint}' is not available; "
                f"available: {available}",
                status=404,
            )
        async with self._load_lock:
            served = await self._load_ref(ref)
            self._remember(served)
        return served


def _gyre_version() -> str:
    try:
        return importlib_metadata.version("gyre")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


def _error(message: str, status: int, request_id: str | None = None) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def to_columns(
    request: InferenceRequest, binary: bytes, model: LoadedModel
) -> dict[str, npt.NDArray[Any]]:
    """Map request tensors onto the model's inputs: one per input, or one ``[n, k]`` matrix."""
    specs = {spec.name: spec for spec in model.signature.inputs}
    expected = ", ".join(specs)
    tensors, offset = [], 0
    for tensor in request.inputs:
        arr, offset = decode_tensor(tensor, binary, offset)
        tensors.append((tensor, arr))
    if len(tensors) == 1 and tensors[0][0].name not in specs:
        tensor, arr = tensors[0]
        if arr.ndim != 2 or arr.shape[1] != len(specs):
            raise ProtocolError(
                f"input '{tensor.name}' is not a model input; send one tensor per input "
                f"({expected}) or a single [n, {len(specs)}] tensor with columns in that order"
            )
        if any(spec.datatype == "BYTES" for spec in specs.values()):
            raise ProtocolError(
                "this model has string inputs, which a single numeric matrix cannot carry; "
                f"send one tensor per input ({expected})"
            )
        if tensor.datatype not in NUMERIC_DATATYPES:
            raise ProtocolError(f"input '{tensor.name}' must be numeric, not {tensor.datatype}")
        return {name: arr[:, i] for i, name in enumerate(specs)}
    columns: dict[str, npt.NDArray[Any]] = {}
    for tensor, arr in tensors:
        spec = specs.get(tensor.name)
        if spec is None:
            raise ProtocolError(f"unknown input '{tensor.name}'; the model's inputs are {expected}")
        if tensor.name in columns:
            raise ProtocolError(f"input '{tensor.name}' is given twice")
        if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1)):
            raise ProtocolError(
                f"input '{tensor.name}' has shape {tensor.shape}; one input per feature must "
                "have shape [n] or [n, 1]"
            )
        wants_bytes = spec.datatype == "BYTES"
        if wants_bytes != (tensor.datatype == "BYTES"):
            raise ProtocolError(
                f"input '{tensor.name}' has datatype {tensor.datatype}; the model expects "
                f"{spec.datatype}"
            )
        columns[tensor.name] = arr.reshape(-1)
    missing = [name for name in specs if name not in columns]
    if missing:
        raise ProtocolError(
            f"missing input(s) {', '.join(missing)}; the model's inputs are {expected}"
        )
    lengths = {len(col) for col in columns.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{name}={len(col)}" for name, col in columns.items())
        raise ProtocolError(f"inputs have different lengths: {detail}")
    return columns


def _wants_binary(request: InferenceRequest, output_name: str) -> bool:
    default = bool((request.parameters or {}).get("binary_data_output", False))
    for out in request.outputs or []:
        if out.name == output_name:
            return bool((out.parameters or {}).get("binary_data", default))
    return default


def create_app(
    endpoint: str,
    resolve: Resolve,
    load: Load,
    *,
    on_inference: Callable[[InferenceEvent], None] | None = None,
    poll_interval: float = 1.0,
    resolve_version: ResolveVersion | None = None,
    cache_size: int = 3,
) -> FastAPI:
    """Build the OIP v2 app for ``endpoint``; see the module docstring for the contract."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )

    holder = ModelHolder(endpoint, resolve, load, resolve_version, cache_size)
    registry = CollectorRegistry()
    requests_total = Counter(
        "gyre_inference_requests",
        "Inference requests by model, version and HTTP status",
        ["model", "version", "status"],
        registry=registry,
    )
    latency = Histogram(
        "gyre_inference_request_duration_seconds",
        "Inference request latency, from receipt to response",
        ["model", "version"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    rows_total = Counter(
        "gyre_inference_rows", "Rows predicted", ["model", "version"], registry=registry
    )
    served_version = Gauge(
        "gyre_served_model_version", "Version the endpoint serves now", ["model"], registry=registry
    )
    load_errors = Counter(
        "gyre_model_load_errors", "Failed resolve/load attempts", ["model"], registry=registry
    )
    callback_errors = Counter(
        "gyre_inference_callback_errors", "on_inference failures", ["model"], registry=registry
    )

    notify = None
    if on_inference is not None:
        notify = _notifier(endpoint, on_inference, callback_errors.labels(endpoint).inc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(
            holder.poll_forever(poll_interval, load_errors.labels(endpoint).inc)
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title=f"Gyre endpoint {endpoint}", lifespan=lifespan, docs_url=None)
    app.state.holder = holder
    app.state.registry = registry

    @app.exception_handler(ProtocolError)
    async def _protocol_error(request: Request, exc: ProtocolError) -> JSONResponse:
        return _error(exc.message, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(str(exc.detail), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(f"invalid request: {exc.errors()}", 400)

    def check_name(name: str) -> None:
        if name != endpoint:
            raise ProtocolError(
                f"model '{name}' is not served here; this server serves '{endpoint}'", status=404
            )

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", response_model=None)
    async def ready() -> dict[str, bool] | JSONResponse:
        if holder.current is None:
            return JSONResponse({"ready": False}, status_code=503)
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata() -> ServerMetadata:
        return ServerMetadata(
            name="gyre", version=_gyre_version(), extensions=["binary_tensor_data"]
        )

    async def model_metadata(name: str, version: str | None) -> ModelMetadata:
        check_name(name)
        served = await holder.get(version)
        sig = served.model.signature
        return ModelMetadata(
            name=endpoint,
            versions=[str(v) for v in holder.versions()],
            platform=served.model.flavor,
            inputs=[
                TensorMetadata(name=s.name, datatype=s.datatype, shape=[-1]) for s in sig.inputs
            ],
            outputs=[
                TensorMetadata(name=sig.output.name, datatype=sig.output.datatype, shape=[-1])
            ],
        )

    @app.get("/v2/models/{name}")
    async def metadata_current(name: str) -> ModelMetadata:
        return await model_metadata(name, None)

    @app.get("/v2/models/{name}/versions/{version}")
    async def metadata_version(name: str, version: str) -> ModelMetadata:
        return await model_metadata(name, version)

    async def model_ready(name: str, version: str | None) -> JSONResponse:
        check_name(name)
        try:
            await holder.get(version)
        except ProtocolError as exc:
            if exc.status != 503:
                raise
            return JSONResponse({"name": name, "ready": False}, status_code=503)
        return JSONResponse({"name": name, "ready": True})

    @app.get("/v2/models/{name}/ready")
    async def ready_current(name: str) -> JSONResponse:
        return await model_ready(name, None)

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def ready_version(name: str, version: str) -> JSONResponse:
        return await model_ready(name, version)

    async def infer(name: str, version: str | None, request: Request) -> Response:
        start = time.perf_counter()
        request_id = request.headers.get(REQUEST_ID_HEADER) or ""
        # Labels only take values the server chose, never raw URL text (unbounded cardinality).
        model_label, version_label, status = endpoint, "", 500
        try:
            if name != endpoint:
                model_label = "_unknown"
            check_name(name)
            served = await holder.get(version)
            version_label = str(served.ref.version)
            body = await request.body()
            parsed, binary = parse_request(body, request.headers.get(BINARY_HEADER))
            request_id = parsed.id or request_id or str(uuid.uuid4())
            response, columns, outputs = await _predict(served, parsed, binary, request_id)
            status = 200
        except ProtocolError as exc:
            status = exc.status
            return _error(exc.message, status, request_id or str(uuid.uuid4()))
        except Exception as exc:
            log.exception("endpoint %s: inference failed", endpoint)
            return _error(f"internal error: {exc}", 500, request_id or str(uuid.uuid4()))
        finally:
            elapsed = time.perf_counter() - start
            requests_total.labels(model_label, version_label, str(status)).inc()
            if status == 200:
                latency.labels(model_label, version_label).observe(elapsed)
        rows_total.labels(endpoint, version_label).inc(len(outputs))
        if notify is not None:
            event = InferenceEvent(
                request_id=request_id,
                time=datetime.now(UTC),
                endpoint=endpoint,
                model_name=served.ref.name,
                model_version=served.ref.version,
                latency_ms=elapsed * 1000.0,
                inputs=columns,
                outputs=outputs,
            )
            # Recorded before the response goes out (off the event loop): a client that got its
            # answer can rely on the record existing, e.g. to flush the log and evaluate it.
            await run_in_threadpool(notify, event)
        return response

    async def _predict(
        served: Served, parsed: InferenceRequest, binary: bytes, request_id: str
    ) -> tuple[Response, dict[str, npt.NDArray[Any]], npt.NDArray[Any]]:
        model = served.model
        out_spec = model.signature.output
        for wanted in parsed.outputs or []:
            if wanted.name != out_spec.name:
                raise ProtocolError(
                    f"unknown output '{wanted.name}'; the model's output is '{out_spec.name}'"
                )
        columns = to_columns(parsed, binary, model)
        try:
            outputs = await run_in_threadpool(model.predict, columns)
        except DataError as exc:
            raise ProtocolError(exc.message) from None
        tensor, raw = encode_output(
            out_spec.name,
            np.asarray(outputs),
            out_spec.datatype,
            binary=_wants_binary(parsed, out_spec.name),
        )
        body = InferenceResponse(
            model_name=endpoint,
            model_version=str(served.ref.version),
            id=request_id,
            outputs=[tensor],
        )
        return _render(body, raw, request_id), columns, outputs

    @app.post("/v2/models/{name}/infer")
    async def infer_current(name: str, request: Request) -> Response:
        return await infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await infer(name, version, request)

    @app.get("/metrics")
    async def metrics() -> Response:
        current = holder.current
        if current is not None:
            served_version.labels(endpoint).set(current.ref.version)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _notifier(
    endpoint: str, callback: Callable[[InferenceEvent], None], on_error: Callable[[], None]
) -> Callable[[InferenceEvent], None]:
    def notify(event: InferenceEvent) -> None:
        # A failing monitor must never fail a prediction: log it and count it instead.
        try:
            callback(event)
        except Exception:
            on_error()
            log.exception("endpoint %s: on_inference failed for %s", endpoint, event.request_id)

    return notify


def _render(body: InferenceResponse, raw: bytes, request_id: str) -> Response:
    headers = {REQUEST_ID_HEADER: request_id}
    doc = body.model_dump(exclude_none=True)
    if not raw:
        return JSONResponse(doc, headers=headers)
    header = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    headers[BINARY_HEADER] = str(len(header))
    return Response(header + raw, media_type="application/octet-stream", headers=headers)


__all__ = ["InferenceEvent", "ModelRef", "ResponseOutput", "create_app", "to_columns"]
