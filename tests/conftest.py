"""Shared fixtures: where the read-only reference data lives, and service availability rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only public datasets in ../shared/data (see its README.md)."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("GYRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"reference data missing at {SHARED_DATA}")
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


PG_BASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _require_services() -> bool:
    return os.environ.get("GYRE_REQUIRE_SERVICES") == "1"


def _postgres_admin_url() -> str:
    """Where to create throwaway databases: GYRE_STORE_URL's server when it is PostgreSQL."""
    url = os.environ.get("GYRE_STORE_URL", "")
    return url if url.startswith("postgresql") else PG_BASE_URL


@contextmanager
def postgres_database() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database on the test server, dropped on exit.

    Unreachable PostgreSQL fails the test when services are required (CI) or when the suite
    was pointed at PostgreSQL with GYRE_STORE_URL; otherwise it skips.
    """
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(_postgres_admin_url()).set(database="postgres")
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        conn = engine.connect()
    except Exception as exc:  # the service is down or psycopg is missing
        if _require_services() or os.environ.get("GYRE_STORE_URL", "").startswith("postgresql"):
            pytest.fail(f"PostgreSQL is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"gyre_test_{uuid.uuid4().hex[:12]}"
    conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.close()
        engine.dispose()


def fresh_postgres_database(request: pytest.FixtureRequest) -> str:
    """Create an empty PostgreSQL database, dropped when ``request``'s scope ends."""
    database = postgres_database()
    url = database.__enter__()
    request.addfinalizer(lambda: database.__exit__(None, None, None))
    return url


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A brand-new, empty PostgreSQL database for one test, dropped afterwards."""
    return fresh_postgres_database(request)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gyre.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def workspace_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The store a test workspace should use: a fresh PostgreSQL database when the suite runs
    with GYRE_STORE_URL=postgresql..., else None (the embedded SQLite default)."""
    if os.environ.get("GYRE_STORE_URL", "").startswith("postgresql"):
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None


def require_service(name: str, host: str, port: int) -> None:
    """Skip unless ``name`` answers on ``host:port``; fail instead when services are required
    (CI sets GYRE_REQUIRE_SERVICES=1), so a stopped broker never passes as a skip."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if _require_services():
            pytest.fail(message)
        pytest.skip(message)
