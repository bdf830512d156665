"""Integration fixtures: real projects copied from examples/bikes, fed real monthly batches.

A project is the bundled bikes example in a temporary folder, with a few months of the UCI
hourly data dropped into ``data/incoming/`` as an upstream system would. Every workspace runs on
the embedded SQLite store by default and on a brand-new PostgreSQL database when the suite runs
with ``GYRE_STORE_URL=postgresql...`` (then ``settings=`` is always passed, so the workspace never
falls back to the shared database that variable names).

Module-scoped fixtures build one released project per module (ingest -> prepare -> train ->
validate -> promote) for the tests that only read it; tests that change state build their own.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gyre.core.settings import Settings
from gyre.workspace import Workspace
from tests.conftest import postgres_database

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bikes"
HOUR_CSV = Path("drift") / "bike-sharing" / "hour.csv"
PG_BASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# Three months: enough for a 30-day holdout after two months of training, ~2k rows in all.
BASE_MONTHS = ("2011-02", "2011-03", "2011-04")


def postgres_mode() -> bool:
    return os.environ.get("GYRE_STORE_URL", "").startswith("postgresql")


def settings_for(root: Path, store_url: str | None) -> Settings | None:
    """Explicit settings for a PostgreSQL run; None lets the embedded default apply."""
    if store_url is None:
        return None
    return Settings(store_url=store_url, artifacts_url=str(root / ".gyre" / "objects"))


def cli_env(store_url: str | None) -> dict[str, str]:
    """The environment for a `gyre` subprocess working on a project opened with ``store_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GYRE_")}
    if store_url is not None:
        env["GYRE_STORE_URL"] = store_url
    env["COLUMNS"] = "200"  # Rich wraps tables at 80 columns when stdout is not a terminal
    return env


@pytest.fixture(scope="session")
def month_csvs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The UCI hour.csv cut into one CSV per month (``'2011-03' -> path``), bytes untouched."""
    from gyre.loop.demo import split_months

    hour_csv = shared_data / HOUR_CSV
    if not hour_csv.is_file():
        pytest.skip(f"{hour_csv} is missing")
    return dict(split_months(hour_csv, tmp_path_factory.mktemp("months")))


@dataclass
class Project:
    """A workspace plus the helpers tests use to feed it."""

    ws: Workspace
    store_url: str | None
    months: dict[str, Path]

    @property
    def root(self) -> Path:
        return self.ws.paths.root

    @property
    def incoming(self) -> Path:
        return self.root / "data" / "incoming"

    def arrive(self, *months: str) -> None:
        """Drop whole monthly batches into the source folder."""
        for month in months:
            shutil.copy2(self.months[month], self.incoming / f"{month}.csv")

    def release(self, reason: str = "test release") -> int:
        """Train, validate and promote the next version; returns its number."""
        trained = self.ws.train("demand")
        report = self.ws.validate(trained.version.ref)
        assert report.passed, report.as_dict()
        self.ws.promote(trained.version.ref, reason=reason)
        return trained.version.version


ProjectFactory = Callable[..., Project]


def create_project(
    root: Path,
    months: dict[str, Path],
    arrived: Sequence[str],
    store_url: str | None,
    *,
    edit: Callable[[str], str] | None = None,
) -> Project:
    """Copy the bikes example to ``root``, drop ``arrived`` months in, and open it."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", ".gyre", "__pycache__"))
    (root / "data" / "incoming").mkdir(parents=True)
    config = root / "gyre.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(edit(text) if edit is not None else text, encoding="utf-8")
    project = Project(
        Workspace.adopt(root, settings=settings_for(root, store_url)), store_url, months
    )
    project.arrive(*arrived)
    return project


@pytest.fixture
def new_project(
    tmp_path: Path, month_csvs: dict[str, Path], workspace_store_url: str | None
) -> Iterator[ProjectFactory]:
    """``new_project(months=..., edit=...)``: a fresh project for one test (its own store)."""
    made: list[Project] = []

    def make(
        months: Sequence[str] = BASE_MONTHS,
        *,
        edit: Callable[[str], str] | None = None,
        name: str = "project",
    ) -> Project:
        project = create_project(
            tmp_path / name, month_csvs, months, workspace_store_url, edit=edit
        )
        made.append(project)
        return project

    yield make
    for project in made:
        project.ws.close()


def without_beat_champion(text: str) -> str:
    """gyre.yaml without the beat_champion gate, for tests about moving traffic, not gates."""
    changed = re.sub(r"^\s*- \{metric: mae, beat_champion: true\}.*\n", "", text, flags=re.M)
    assert changed != text, "the example's beat_champion gate moved; update this helper"
    return changed


@contextmanager
def module_project(
    factory: pytest.TempPathFactory,
    months: dict[str, Path],
    arrived: Sequence[str] = BASE_MONTHS,
    *,
    edit: Callable[[str], str] | None = None,
) -> Iterator[Project]:
    """A project for a whole module, on its own PostgreSQL database when that is the backend."""
    root = factory.mktemp("module") / "project"
    if postgres_mode():
        with postgres_database() as url:
            project = create_project(root, months, arrived, url, edit=edit)
            try:
                yield project
            finally:
                project.ws.close()
    else:
        project = create_project(root, months, arrived, None, edit=edit)
        try:
            yield project
        finally:
            project.ws.close()


@pytest.fixture(scope="module")
def released(
    tmp_path_factory: pytest.TempPathFactory, month_csvs: dict[str, Path]
) -> Iterator[Project]:
    """Three months ingested and prepared, demand:1 trained, validated and serving as champion.

    Shared by a module: tests must only read it.
    """
    with module_project(tmp_path_factory, month_csvs) as project:
        project.ws.ingest("rentals")
        project.ws.prepare()
        project.release("initial release")
        yield project


# -- a real HTTP server in a thread -----------------------------------------------------------


@dataclass
class RunningServer:
    url: str
    client: Any  # httpx.Client


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until ``predicate`` holds (servers poll the store on their own clock)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        time.sleep(0.02)


@contextmanager
def serve_app(app: Any) -> Iterator[RunningServer]:
    """Run an ASGI app under uvicorn on a free 127.0.0.1 port until the block ends."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30)
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="server start")
        assert thread.is_alive(), "the server thread died while starting"

        def ready() -> bool:
            return bool(client.get("/v2/health/ready").status_code == 200)

        wait_for(ready, what="server ready")
        yield RunningServer(url, client)
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
