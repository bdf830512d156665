"""The store's schema history on SQLite and PostgreSQL: contract versions, drift events, batches."""

from __future__ import annotations

from typing import Any

import pytest

from gyre.core.errors import ConflictError
from gyre.core.store import MetadataStore

CID = "b3:" + "ab" * 32
OTHER = "b3:" + "cd" * 32


def _contract(store: MetadataStore, version: int, content_id: str = CID) -> Any:
    with store.transaction() as conn:
        return store.schemas.add_contract_version(
            conn,
            source="orders",
            version=version,
            content_id=content_id,
            origin="file",
            file="contracts/orders.yaml",
            file_content_id=content_id,
            evolved=[],
            columns=[{"name": "id", "type": "int", "nullable": False}],
            run_id=None,
        )


def _event(run_id: str, version: int, column: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "dataset_version": version,
        "contract_version": 1,
        "batch": f"in/{version}.csv",
        "entity": "columns",
        "change": "new_column",
        "column": column,
        "old_type": None,
        "new_type": "string",
        "mode": "evolve",
        "action": "added_column",
        "affected": 0,
        "detail": "added as string",
    }


def test_contract_versions_are_numbered_per_source_and_audited(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    assert store.schemas.latest_contract("orders") is None
    first = _contract(store, 1)
    second = _contract(store, 2, OTHER)
    assert (first.version, second.version) == (1, 2)
    assert [v.content_id for v in store.schemas.contract_versions("orders")] == [CID, OTHER]
    latest = store.schemas.latest_contract("orders")
    assert latest is not None and latest.version == 2 and latest.created_at.tzinfo is not None
    assert store.schemas.contract_versions("other") == []
    actions = [e.action for e in store.audit.recent()]
    assert actions.count("contract_version.registered") == 2
    store.dispose()


def test_a_concurrent_registration_is_reused_or_refused(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    _contract(store, 1)
    # Another process registered the same content as version 1: it is that version.
    assert _contract(store, 1).id == store.schemas.contract_versions("orders")[0].id
    # A different contract took version 1 meanwhile: this batch must be checked again.
    with pytest.raises(ConflictError, match="ingest again"):
        _contract(store, 1, OTHER)
    with pytest.raises(ConflictError):
        _contract(store, 3, OTHER)  # a gap means a version was missed
    assert len(store.schemas.contract_versions("orders")) == 1
    store.dispose()


def test_drift_events_commit_with_their_transaction_or_not_at_all(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    run = store.runs.start(kind="ingest", job="orders")
    with store.transaction() as conn:
        store.schemas.add_drift_events(conn, "orders", [_event(run.id, 1, "promo")])
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.schemas.add_drift_events(conn, "orders", [_event(run.id, 2, "lost")])
        raise RuntimeError("crash before commit")
    with store.transaction() as conn:
        store.schemas.add_drift_events(conn, "orders", [])  # nothing to record: no audit event
    events = store.schemas.drift_events("orders")
    assert [(e.column, e.dataset_version, e.batch) for e in events] == [("promo", 1, "in/1.csv")]
    assert events[0].created_at.tzinfo is not None
    assert [e.action for e in store.audit.recent()].count("schema_drift.recorded") == 1
    store.dispose()


def test_ingest_batches_join_runs_to_the_versions_they_committed(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    ok = store.runs.start(kind="ingest", job="orders", params={"batch": "in/1.csv"})
    store.datasets.add_version(
        "orders", content_id=CID, schema=[], row_count=2, stats={"rows_in": 2}, run_id=ok.id
    )
    store.runs.finish(ok.id, status="completed")
    refused = store.runs.start(kind="ingest", job="orders", params={"batch": "in/2.csv"})
    store.runs.finish(refused.id, status="failed", error="SchemaDriftError: in/2.csv: ...")
    store.runs.start(kind="train", job="orders")  # not an ingest run
    other = store.runs.start(kind="ingest", job="other")
    store.datasets.add_version("other", content_id=CID, schema=[], row_count=1, run_id=other.id)
    batches = store.schemas.ingest_batches("orders")
    assert [(b.params["batch"], b.status, b.dataset_version) for b in batches] == [
        ("in/2.csv", "failed", None),
        ("in/1.csv", "completed", 1),
    ]
    assert batches[1].stats == {"rows_in": 2}
    assert batches[0].error is not None and batches[0].error.startswith("SchemaDriftError")
    assert len(store.schemas.ingest_batches("orders", limit=1)) == 1
    assert store.schemas.ingest_batches("nothing") == []
    store.dispose()


def test_long_labels_and_nested_types_are_cut_to_fit(store_url: str) -> None:
    store = MetadataStore.open(store_url)
    run = store.runs.start(kind="ingest", job="orders")
    event = _event(run.id, 1, "payload")
    event["batch"] = "s3://bucket/" + "deep/" * 200 + "file.jsonl"
    event["old_type"] = "struct<" + ", ".join(f"f{i}: int64" for i in range(40)) + ">"
    with store.transaction() as conn:
        store.schemas.add_drift_events(conn, "orders", [event])
    (stored,) = store.schemas.drift_events("orders")
    assert len(stored.batch) == 500 and stored.batch.startswith("s3://bucket/deep/")
    assert stored.old_type is not None and len(stored.old_type) == 100
    assert stored.old_type.endswith("…")
    store.dispose()
