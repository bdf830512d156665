"""Serving fixtures: real packages in a real store, and a real uvicorn server on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
import uvicorn

from gyre.core.artifacts import ArtifactStore
from gyre.models import LoadedModel, load_model, save_model
from gyre.serve.app import InferenceEvent, ModelRef, create_app
from gyre.train import get_trainer

FEATURES = ["a", "b", "colour"]


@dataclass
class Packages:
    store: ArtifactStore
    v1: str  # package ids
    v2: str
    numeric: str  # numeric inputs only, for the [n, k] matrix form
    classifier: str


def _table(n: int = 300) -> pa.Table:
    rng = np.random.default_rng(7)
    a = rng.normal(size=n)
    b = rng.uniform(0, 1, size=n)
    colour = rng.choice(["red", "green"], size=n)
    y = 2 * a + b + np.where(colour == "red", 3.0, 0.0)
    return pa.table({"a": a, "b": b, "colour": colour, "y": y, "cls": np.where(y > 1, "hi", "lo")})


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    store = ArtifactStore.from_url(str(tmp_path_factory.mktemp("serve") / "objects"))
    table = _table()
    lgb = get_trainer("lightgbm")

    def package(features: list[str], target: str, task: Any, rounds: int) -> str:
        fit = lgb.fit(
            table, features=features, target=target, task=task, params={"n_estimators": rounds}
        )
        return save_model(store, fit.model, flavor=fit.flavor, signature=fit.signature)

    return Packages(
        store=store,
        v1=package(FEATURES, "y", "regression", 20),
        v2=package(FEATURES, "y", "regression", 60),
        numeric=package(["a", "b"], "y", "regression", 20),
        classifier=package(FEATURES, "cls", "classification", 20),
    )


@dataclass
class Running:
    url: str
    client: httpx.Client
    app: Any
    events: list[InferenceEvent]


class Target:
    """What ``resolve`` returns; tests change it to trigger a hot swap."""

    def __init__(self, ref: ModelRef | None) -> None:
        self.ref = ref
        self.fail: str | None = None

    def __call__(self) -> ModelRef | None:
        if self.fail:
            raise RuntimeError(self.fail)
        return self.ref


StartServer = Callable[..., Running]


@pytest.fixture
def start_server(packages: Packages) -> Iterator[StartServer]:
    started: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []
    loads: list[ModelRef] = []

    def load(ref: ModelRef) -> LoadedModel:
        loads.append(ref)
        return load_model(packages.store, ref.package_id)

    def start(resolve: Callable[[], ModelRef | None], **kwargs: Any) -> Running:
        events: list[InferenceEvent] = []
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("on_inference", events.append)
        app = create_app("bikes", resolve, load, **kwargs)
        app.state.loads = loads
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=30)
        started.append((server, thread, client))
        return Running(url=url, client=client, app=app, events=events)

    yield start
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """Poll until a predicate holds (no fixed sleeps: the poller runs on its own clock)."""
    return _wait_for
