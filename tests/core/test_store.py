"""The metadata store on SQLite and PostgreSQL: versions, aliases, runs, concurrency."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import text

from gyre.core.errors import NotFoundError, StoreError
from gyre.core.store import MetadataStore
from gyre.core.store.engine import head_revision, schema_revision

CID = "b3:" + "ab" * 32


def test_migrations_bring_an_empty_database_to_head(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    assert schema_revision(store.engine) == head_revision()
    # Opening again is a no-op, not a failure.
    MetadataStore.open(store_url).dispose()
    store.dispose()


def test_dataset_versions_are_numbered_and_listed(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    first = store.datasets.add_version("rentals", content_id=CID, schema=[], row_count=10)
    second = store.datasets.add_version(
        "rentals",
        content_id="b3:" + "cd" * 32,
        schema=[{"name": "cnt", "type": "int64"}],
        row_count=20,
        stats={"rows_in": 21, "quarantined": 1},
    )
    assert (first.version, second.version) == (1, 2)
    assert store.datasets.version("rentals").version == 2
    assert store.datasets.version("rentals", 1).row_count == 10
    assert [v.version for v in store.datasets.versions("rentals")] == [2, 1]
    assert second.stats == {"rows_in": 21, "quarantined": 1}
    assert second.created_at.tzinfo is not None
    with pytest.raises(NotFoundError, match="no version 7"):
        store.datasets.version("rentals", 7)
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        store.datasets.version("nope")


def test_runs_record_params_metrics_and_status(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    run = store.runs.start(kind="train", job="demand", params={"lr": 0.05}, code_hash="b3:x")
    assert run.status == "running"
    store.runs.log_metrics(run.id, {"mae": 12.5})
    done = store.runs.finish(run.id, status="completed", metrics={"mae": 12.5, "rmse": 20.0})
    assert done.status == "completed" and done.metrics["rmse"] == 20.0
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert store.runs.get(run.id[:8]).id == run.id
    assert [r.id for r in store.runs.recent(kind="train")] == [run.id]


def test_model_versions_aliases_gates_and_approvals(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    v1 = store.models.register(
        "demand", package_id=CID, flavor="lightgbm", signature={}, metrics={"mae": 30}, run_id=None
    )
    v2 = store.models.register(
        "demand", package_id=CID, flavor="lightgbm", signature={}, metrics={"mae": 20}, run_id=None
    )
    assert store.models.alias("demand", "champion") is None
    store.models.set_alias("demand", "champion", 1, reason="first")
    store.models.set_alias("demand", "champion", 2, reason="better")
    champion = store.models.alias("demand", "champion")
    assert champion is not None and champion.version == 2 and champion.aliases == ("champion",)
    assert store.models.version("demand", 1).aliases == ()
    gate = store.models.add_gate_result(
        v2, suite="default", passed=True, results=[{"metric": "mae"}], run_id=None
    )
    assert gate.passed and store.models.gate_results(v2)[0].id == gate.id
    store.models.add_approval(v1, decision="rejected", actor="ann", reason="too slow")
    assert store.models.approvals(v1)[0].actor == "ann"
    moved = [e for e in store.audit.recent() if e.action == "alias.moved"]
    assert [(e.data["from_version"], e.data["to_version"]) for e in moved] == [(None, 1), (1, 2)]


def test_endpoints_deployments_monitors_alerts(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    with pytest.raises(NotFoundError, match="has no versions yet"):
        store.operations.ensure_endpoint("demand", model="demand", alias="champion")
    store.models.register(
        "demand", package_id=CID, flavor="lightgbm", signature={}, metrics={}, run_id=None
    )
    endpoint = store.operations.ensure_endpoint("demand", model="demand", alias="champion")
    with store.transaction() as conn:
        store.operations.record_deployment(conn, endpoint, {"versions": [[1, 1.0]]}, None)
    assert store.operations.deployments("demand")[0].traffic == {"versions": [[1, 1.0]]}
    store.operations.ensure_monitor("demand", endpoint="demand", config={"drift": 0.2})
    alert = store.operations.raise_alert(
        "demand", kind="performance", window="2011-07", message="mae up", details={}, value=2.0
    )
    assert alert.status == "open"
    store.operations.resolve_alert(alert.id, action="retrain")
    assert store.operations.alerts(status="resolved")[0].action == "retrain"
    assert store.audit.verify() == (len(store.audit.recent()), None)


def _register_many(url: str, worker: int, count: int) -> None:
    store = MetadataStore.open(url)
    for i in range(count):
        store.datasets.add_version("shared", content_id=CID, schema=[], row_count=worker * 1000 + i)
        store.models.register(
            "shared", package_id=CID, flavor="lightgbm", signature={}, metrics={}, run_id=None
        )
    store.dispose()


def test_concurrent_writers_from_several_processes_lose_nothing(store_url: str) -> None:
    """Four processes register versions of the same dataset and model at once."""
    MetadataStore.open(store_url).dispose()
    workers, each = 4, 15
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_register_many, args=(store_url, w, each)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = MetadataStore.open(store_url)
    versions = store.datasets.versions("shared")
    assert sorted(v.version for v in versions) == list(range(1, workers * each + 1))
    assert sorted(v.row_count for v in versions) == sorted(
        w * 1000 + i for w in range(workers) for i in range(each)
    )
    assert len(store.models.versions("shared")) == workers * each
    checked, problem = store.audit.verify()
    assert problem is None
    assert checked == 2 + 2 * workers * each  # two "created" events plus one per version


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot reach the metadata store"):
        MetadataStore.open("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_unsupported_url_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported metadata store backend 'mysql'"):
        MetadataStore.open("mysql://root@127.0.0.1/test")
    with pytest.raises(StoreError, match="is not a database URL"):
        MetadataStore.open("not a url")


def test_sqlite_store_uses_wal(tmp_path: Path) -> None:
    store = MetadataStore.open(f"sqlite:///{tmp_path / 'gyre.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
