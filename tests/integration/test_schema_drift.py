"""Schema drift through the workspace: real CSV and Parquet batches with a new column, a missing
column or a retyped value, under each mode; what is stored, quarantined and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gyre.core.errors import NotFoundError, QuarantineLimitError
from gyre.core.settings import Settings
from gyre.ingest.drift import SchemaDriftError
from gyre.workspace import Workspace

CONTRACT = """\
columns:
  - {name: id, type: int}
  - {name: amount, type: float, min: 0}
  - {name: note, type: string, nullable: true}
"""
FIRST = "id,amount,note\n1,2.5,a\n2,3.0,b\n"


def project(
    tmp_path: Path,
    store_url: str | None,
    drift: str | None = None,
    *,
    contract: bool = True,
    limit: float = 0.5,
) -> Workspace:
    """A project whose source `orders` reads in/*.csv (a new Workspace re-reads gyre.yaml)."""
    (tmp_path / "contracts").mkdir(exist_ok=True)
    (tmp_path / "contracts" / "orders.yaml").write_text(CONTRACT)
    (tmp_path / "in").mkdir(exist_ok=True)
    lines = ["project: shop", "sources:", "  orders:", "    type: csv", "    path: 'in/*.csv'"]
    if contract:
        lines.append("    contract: contracts/orders.yaml")
    lines.append(f"    quarantine_limit: {limit}")
    if drift is not None:
        lines.append(f"    schema_drift: {drift}")
    (tmp_path / "gyre.yaml").write_text("\n".join(lines) + "\n")
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(tmp_path / ".gyre" / "objects"))
    return Workspace.adopt(tmp_path, settings=settings)


def drop(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "in" / name).write_text(text)


def events(ws: Workspace) -> list[tuple[str, str | None, str, int]]:
    """(change, column, action, affected) of every drift event, oldest first."""
    found = reversed(ws.store.schemas.drift_events("orders"))
    return [(e.change, e.column, e.action, e.affected) for e in found]


# ---------------------------------------------------------------------- columns: evolve


def test_evolve_keeps_a_new_column_and_earlier_rows_read_as_null(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url)
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,4.0,c,SPRING\n4,5.0,,\n")
    (report,) = ws.ingest("orders")
    first, second = report.batches
    assert (first.contract_version, second.contract_version) == (1, 2)
    assert [e["action"] for e in second.schema_drift] == ["added_column"]
    stored = ws.read_dataset("orders")
    assert stored.column_names == ["id", "amount", "note", "promo"]
    assert stored.to_pylist()[0] == {"id": 1, "amount": 2.5, "note": "a", "promo": None}
    assert stored["promo"].to_pylist() == [None, None, "SPRING", None]
    # The earlier version is untouched and still reads as it was.
    assert ws.read_dataset("orders@1").column_names == ["id", "amount", "note"]
    assert [c["name"] for c in ws.dataset("orders").record.schema][-1] == "promo"
    assert events(ws) == [
        ("new_table", None, "created_dataset", 0),
        ("new_column", "promo", "added_column", 0),
    ]
    v1, v2 = ws.contract_history("orders")
    assert (v1.origin, v2.origin) == ("file", "evolved")
    assert v2.changes == ["+ promo: string, nullable"]
    assert v2.evolved == [{"name": "promo", "type": "string", "from_type": None}]
    # The evolved column is part of the known schema now: the next batch is no drift.
    drop(tmp_path, "3.csv", "id,amount,note,promo\n5,1.0,e,SUMMER\n")
    (again,) = ws.ingest("orders")
    assert again.batches[0].schema_drift == [] and again.batches[0].contract_version == 2
    assert ws.read_dataset("orders").num_rows == 5


def test_evolve_without_a_contract_compares_with_the_stored_rows(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, contract=False)
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", "id,amount,promo\n3,4.0,X\n")
    (report,) = ws.ingest("orders")
    assert report.batches[1].contract_version is None
    stored = ws.read_dataset("orders").to_pylist()
    assert stored[0] == {"id": "1", "amount": "2.5", "note": "a", "promo": None}
    assert stored[2] == {"id": "3", "amount": "4.0", "note": None, "promo": "X"}
    assert events(ws)[1:] == [
        ("new_column", "promo", "added_column", 0),
        ("missing_column", "note", "filled_nulls", 1),
    ]
    assert ws.contract_history("orders") == []


# ---------------------------------------------------------------------- columns: freeze


def test_freeze_refuses_a_new_column_and_commits_nothing(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{columns: freeze}")
    drop(tmp_path, "1.csv", FIRST)
    ws.ingest("orders")
    before = ws.dataset("orders").record
    audit_before = len(ws.audit_events())
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,4.0,c,X\n")
    with pytest.raises(SchemaDriftError) as raised:
        ws.ingest("orders")
    assert str(raised.value).startswith(
        "in/2.csv: new column(s) promo not in the contract of source 'orders' "
        "(contracts/orders.yaml); schema_drift.columns of source 'orders' is freeze"
    )
    assert raised.value.hint is not None and "contracts/orders.yaml" in raised.value.hint
    assert ws.dataset("orders").record.version == before.version
    assert events(ws) == [("new_table", None, "created_dataset", 0)]
    assert [v.version for v in ws.contract_history("orders")] == [1]
    assert len(ws.audit_events()) == audit_before
    with pytest.raises(NotFoundError):
        ws.dataset("orders.quarantine")
    # The file is not marked as ingested: fixing the policy lets the same batch in.
    with pytest.raises(SchemaDriftError):
        ws.ingest("orders")
    ws.close()
    ws = project(tmp_path, workspace_store_url, "{columns: evolve}")
    (report,) = ws.ingest("orders")
    assert [b.file for b in report.batches] == ["in/2.csv"]
    history = ws.ingest_history("orders")
    assert [b.status for b in history.batches] == ["committed", "refused", "refused", "committed"]
    refused = history.batches[1]
    assert refused.dataset_version is None and refused.error is not None
    assert "SchemaDriftError" in refused.error and refused.drift_events == 0


def test_freeze_refuses_a_missing_column(tmp_path: Path, workspace_store_url: str | None) -> None:
    ws = project(tmp_path, workspace_store_url, "{columns: freeze}")
    drop(tmp_path, "1.csv", "id,amount\n1,2.5\n")
    with pytest.raises(SchemaDriftError, match="column\\(s\\) note of the contract"):
        ws.ingest("orders")
    with pytest.raises(NotFoundError):
        ws.dataset("orders")


# ----------------------------------------------------------------- columns: discard modes


def test_discard_row_quarantines_rows_that_use_the_new_column(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{columns: discard_row}")
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,4.0,c,X\n4,5.0,d,\n")
    (report,) = ws.ingest("orders")
    second = report.batches[1]
    assert (second.rows_in, second.accepted, second.quarantined) == (2, 1, 1)
    assert ws.read_dataset("orders").column_names == ["id", "amount", "note"]
    assert ws.read_dataset("orders")["id"].to_pylist() == [1, 2, 4]
    (record,) = ws.quarantine_records("orders").to_pylist()
    assert (record["file"], record["line"], record["column"], record["rule"], record["value"]) == (
        "in/2.csv",
        2,
        "promo",
        "schema_drift",
        "X",
    )
    assert json.loads(record["raw"])["promo"] == "X"  # the refused row, whole
    assert events(ws)[-1] == ("new_column", "promo", "quarantined_rows", 1)
    assert [v.version for v in ws.contract_history("orders")] == [1]  # nothing evolved


def test_discard_value_drops_the_new_column_and_counts_it(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{columns: discard_value}")
    drop(tmp_path, "1.csv", "id,amount,note,promo,code\n1,2.5,a,X,\n2,3.0,b,Y,\n")
    (report,) = ws.ingest("orders")
    assert report.batches[0].accepted == 2 and report.batches[0].quarantined == 0
    assert ws.read_dataset("orders").column_names == ["id", "amount", "note"]
    assert events(ws)[1:] == [
        ("new_column", "promo", "dropped_values", 2),
        ("new_column", "code", "dropped_values", 0),
    ]


def test_a_missing_column_is_read_as_null_and_nullability_still_applies(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, limit=1.0)
    drop(tmp_path, "1.csv", "id,amount\n1,2.5\n")  # note (nullable) is missing
    drop(tmp_path, "2.csv", "id,note\n2,b\n")  # amount (not nullable) is missing
    (report,) = ws.ingest("orders")
    first, second = report.batches
    assert (first.accepted, second.accepted, second.quarantined) == (1, 0, 1)
    assert ws.read_dataset("orders").to_pylist() == [{"id": 1, "amount": 2.5, "note": None}]
    assert ws.quarantine_records("orders")["rule"].to_pylist() == ["not_null"]
    missing = [e for e in ws.store.schemas.drift_events("orders") if e.change == "missing_column"]
    assert sorted((e.column, e.old_type) for e in missing) == [
        ("amount", "float"),
        ("note", "string"),
    ]
    amount = next(e for e in missing if e.column == "amount")
    assert "1 row(s) were quarantined" in amount.detail


# -------------------------------------------------------------------------- data types

RETYPED = "id,amount,note\n3,abc,c\n4,5.0,\n"


def test_data_type_discard_row_is_the_default(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url)
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", RETYPED)
    ws.ingest("orders")
    assert ws.read_dataset("orders")["id"].to_pylist() == [1, 2, 4]
    (record,) = ws.quarantine_records("orders").to_pylist()
    assert (record["column"], record["rule"], record["value"]) == ("amount", "type", "abc")
    (event,) = [e for e in ws.store.schemas.drift_events("orders") if e.entity == "data_type"]
    assert (event.column, event.old_type, event.new_type, event.mode) == (
        "amount",
        "float",
        "string",
        "discard_row",
    )
    assert (event.action, event.affected, event.dataset_version) == ("quarantined_rows", 1, 2)


def test_data_type_freeze_commits_nothing(tmp_path: Path, workspace_store_url: str | None) -> None:
    ws = project(tmp_path, workspace_store_url, "{data_type: freeze}")
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", RETYPED)
    with pytest.raises(SchemaDriftError, match="amount has 1 value\\(s\\) that are not a valid"):
        ws.ingest("orders")
    assert ws.dataset("orders").record.version == 1
    with pytest.raises(NotFoundError):
        ws.dataset("orders.quarantine")


def test_data_type_discard_value_stores_null(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{data_type: discard_value}")
    (tmp_path / "contracts" / "orders.yaml").write_text(
        CONTRACT.replace("min: 0}", "min: 0, nullable: true}")
    )
    drop(tmp_path, "1.csv", RETYPED)
    (report,) = ws.ingest("orders")
    assert (report.accepted, report.quarantined) == (2, 0)
    assert ws.read_dataset("orders")["amount"].to_pylist() == [None, 5.0]
    assert events(ws)[-1] == ("type", "amount", "nulled_values", 1)


def test_data_type_evolve_widens_the_column_and_the_stored_rows(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{data_type: evolve}")
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", "id,amount,note\n3.5,4.0,c\n")
    (report,) = ws.ingest("orders")
    assert report.batches[1].contract_version == 2
    stored = ws.read_dataset("orders")
    assert stored.schema.field("id").type == pa.float64()
    assert stored["id"].to_pylist() == [1.0, 2.0, 3.5]
    assert ws.read_dataset("orders@1").schema.field("id").type == pa.int64()
    (change,) = ws.contract_history("orders")[1:]
    assert change.changes == ["~ id: int -> float"]
    assert change.evolved == [{"name": "id", "type": "float", "from_type": "int"}]


def test_parquet_without_a_contract_widens_stored_types(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{data_type: evolve}", contract=False)
    # gyre.yaml is read on first use, so the source can still become a Parquet one.
    (tmp_path / "gyre.yaml").write_text(
        (tmp_path / "gyre.yaml")
        .read_text()
        .replace("type: csv", "type: parquet")
        .replace("in/*.csv", "in/*.parquet")
    )
    pq.write_table(pa.table({"k": pa.array([1, 2], pa.int32())}), tmp_path / "in" / "1.parquet")
    pq.write_table(pa.table({"k": [2.5]}), tmp_path / "in" / "2.parquet")
    pq.write_table(pa.table({"k": ["n/a"]}), tmp_path / "in" / "3.parquet")
    ws.ingest("orders")
    stored = ws.read_dataset("orders")
    assert stored.schema.field("k").type == pa.string()
    assert stored["k"].to_pylist() == ["1", "2", "2.5", "n/a"]
    widened = [(e.old_type, e.new_type) for e in ws.store.schemas.drift_events("orders")[:2]]
    assert widened == [("float", "string"), ("int", "float")]


# ---------------------------------------------------------------------------- tables


def test_tables_freeze_means_the_source_may_not_create_its_dataset(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, "{tables: freeze}")
    drop(tmp_path, "1.csv", FIRST)
    with pytest.raises(SchemaDriftError, match="has no dataset yet"):
        ws.ingest("orders")
    with pytest.raises(NotFoundError):
        ws.dataset("orders")
    ws.close()
    ws = project(tmp_path, workspace_store_url)  # created once, deliberately...
    ws.ingest("orders")
    ws.close()
    ws = project(tmp_path, workspace_store_url, "{tables: freeze}")  # ...then frozen
    drop(tmp_path, "2.csv", "id,amount,note\n3,1.0,c\n")
    (report,) = ws.ingest("orders")
    assert report.batches[0].dataset_version == "orders@2"


# ------------------------------------------------------------------ nothing half-recorded


def test_a_batch_refused_after_drift_was_found_records_none_of_it(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, limit=0.1)
    drop(tmp_path, "1.csv", FIRST)
    ws.ingest("orders")
    # A new column (would evolve the contract) in a batch the quarantine limit refuses.
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,-1,c,X\n4,-2,d,Y\n")
    with pytest.raises(QuarantineLimitError):
        ws.ingest("orders")
    assert [v.version for v in ws.contract_history("orders")] == [1]
    assert events(ws) == [("new_table", None, "created_dataset", 0)]
    assert ws.read_dataset("orders").column_names == ["id", "amount", "note"]


def test_replay_after_a_column_evolved_holds_rows_to_the_evolved_contract(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    """Rows refused before a column joined replay into the wider schema, nulls in the new one."""
    ws = project(tmp_path, workspace_store_url)
    drop(tmp_path, "1.csv", "id,amount,note\n1,2.5,a\n2,-3.0,b\n")  # -3.0 breaks `min: 0`
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,4.0,c,SPRING\n")
    ws.ingest("orders")
    assert ws.read_dataset("orders").column_names == ["id", "amount", "note", "promo"]
    contract = tmp_path / "contracts" / "orders.yaml"
    contract.write_text(contract.read_text().replace("min: 0", "min: -10"))
    ws = Workspace.adopt(tmp_path, settings=ws.settings)
    report = ws.replay_quarantine("orders")
    assert (report.replayed, report.accepted, report.still_quarantined) == (1, 1, 0)
    stored = ws.read_dataset("orders").to_pylist()
    assert {"id": 2, "amount": -3.0, "note": "b", "promo": None} in stored
    assert len(stored) == 3
    latest = ws.store.schemas.latest_contract("orders")
    assert latest is not None and latest.origin == "file"  # the edited file is a new version
