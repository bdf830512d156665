"""`gyre ingest history` and `gyre contract history` on real batches, through the in-process CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from gyre.cli.ingest_history import history_args
from gyre.cli.main import app
from gyre.core.errors import ConfigError
from gyre.workspace import Workspace

from .test_schema_drift import CONTRACT, FIRST, drop, project


def cli(store_url: str | None, root: Path, *args: str) -> Any:
    """Run `gyre ARGS --project ROOT` in-process on the test's store; returns the result."""
    runner = CliRunner(env={"GYRE_STORE_URL": store_url, "COLUMNS": "220"})
    return runner.invoke(app, [*args, "--project", str(root)])


def three_batches(tmp_path: Path, store_url: str | None) -> Workspace:
    """Batch 1 creates the dataset, batch 2 brings a new column, batch 3 a bad value; then a
    batch refused by the quarantine limit."""
    ws = project(tmp_path, store_url)
    drop(tmp_path, "1.csv", FIRST)
    drop(tmp_path, "2.csv", "id,amount,note,promo\n3,4.0,c,X\n")
    drop(tmp_path, "3.csv", "id,amount,note,promo\n4,abc,d,\n5,1.0,e,\n6,2.0,f,\n")
    ws.ingest("orders")
    drop(tmp_path, "4.csv", "id,amount,note\n7,-1,g\n")
    try:
        ws.ingest("orders")
    except Exception as exc:  # the quarantine limit: recorded as a refused batch
        assert "above the limit" in str(exc)
    return ws


def test_ingest_history_json_lists_batches_drift_and_contract_versions(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    three_batches(tmp_path, workspace_store_url)
    result = cli(workspace_store_url, tmp_path, "ingest", "history", "orders", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["source"] == "orders" and found["batches_truncated"] is False
    batches = [
        (
            b["batch"],
            b["status"],
            b["rows_in"],
            b["accepted"],
            b["quarantined"],
            b["deduplicated"],
            b["dataset_version"],
            b["contract_version"],
        )
        for b in found["batches"]
    ]
    assert batches == [
        ("in/1.csv", "committed", 2, 2, 0, 0, 1, 1),
        ("in/2.csv", "committed", 1, 1, 0, 0, 2, 2),
        ("in/3.csv", "committed", 3, 2, 1, 0, 3, 2),
        ("in/4.csv", "refused", None, None, None, None, None, None),
    ]
    assert "QuarantineLimitError" in found["batches"][3]["error"]
    assert [b["drift_events"] for b in found["batches"]] == [1, 1, 1, 0]
    drift = [(e["batch"], e["change"], e["column"], e["action"]) for e in found["drift_events"]]
    assert drift == [
        ("in/1.csv", "new_table", None, "created_dataset"),
        ("in/2.csv", "new_column", "promo", "added_column"),
        ("in/3.csv", "type", "amount", "quarantined_rows"),
    ]
    event = found["drift_events"][2]
    assert (event["dataset_version"], event["contract_version"], event["mode"]) == (
        3,
        2,
        "discard_row",
    )
    assert event["run_id"] == found["batches"][2]["run_id"]
    assert [(v["version"], v["origin"]) for v in found["contract_versions"]] == [
        (1, "file"),
        (2, "evolved"),
    ]
    limited = cli(
        workspace_store_url, tmp_path, "ingest", "history", "orders", "--json", "--limit", "2"
    )
    shown = json.loads(limited.stdout)
    assert [b["batch"] for b in shown["batches"]] == ["in/3.csv", "in/4.csv"]
    assert shown["batches_truncated"] is True
    assert [e["batch"] for e in shown["drift_events"]] == ["in/3.csv"]


def test_ingest_history_tables_for_people(tmp_path: Path, workspace_store_url: str | None) -> None:
    three_batches(tmp_path, workspace_store_url)
    result = cli(workspace_store_url, tmp_path, "ingest", "history", "orders")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "orders: 4 batch(es) shown, 3 committed, 3 drift event(s), contract version 2" in out
    assert "orders@3" in out and "Schema drift" in out and "Contract versions" in out
    assert "+ promo: string, nullable" in out
    assert "refused in/4.csv: QuarantineLimitError" in out
    # Options the two forms share may come before `history`.
    assert history_args(["--json", "history", "orders"]) == ["--json", "orders"]
    assert history_args(["-p", "x", "history", "orders"]) == ["-p", "x", "orders"]
    assert history_args(["--all", "history"]) is None
    assert history_args(["--", "history"]) is None


def test_contract_history_shows_file_edits_and_what_evolved(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = three_batches(tmp_path, workspace_store_url)
    (tmp_path / "in" / "4.csv").unlink()  # the refused batch is withdrawn upstream
    # A person edits the contract: a new rule and a uniqueness key. The evolved column stays.
    (tmp_path / "contracts" / "orders.yaml").write_text(
        CONTRACT.replace("{name: id, type: int}", "{name: id, type: int, min: 1}")
        + "unique: [id]\n"
    )
    drop(tmp_path, "5.csv", "id,amount,note,promo\n8,1.0,h,Y\n")
    (report,) = ws.ingest("orders")
    assert report.batches[-1].contract_version == 3
    result = cli(workspace_store_url, tmp_path, "contract", "history", "orders", "--json")
    assert result.exit_code == 0, result.output
    versions = json.loads(result.stdout)
    assert [(v["version"], v["origin"]) for v in versions] == [
        (1, "file"),
        (2, "evolved"),
        (3, "file"),
    ]
    assert versions[2]["changes"] == ["~ id: min (none) -> 1", "~ unique: None -> ['id']"]
    assert versions[2]["evolved"] == [{"name": "promo", "type": "string", "from_type": None}]
    assert [c["name"] for c in versions[2]["columns"]] == ["id", "amount", "note", "promo"]
    # Declaring the evolved column in the file makes it the file's.
    (tmp_path / "contracts" / "orders.yaml").write_text(
        CONTRACT + "  - {name: promo, type: string, nullable: true, allowed: [X, Y]}\n"
    )
    drop(tmp_path, "6.csv", "id,amount,note,promo\n9,1.0,i,X\n")
    ws.ingest("orders")
    last = ws.contract_history("orders")[-1]
    assert (last.version, last.origin, last.evolved) == (4, "file", [])
    assert "~ promo: allowed (none) -> [X, Y]" in last.changes
    table = cli(workspace_store_url, tmp_path, "contract", "history", "orders")
    assert "Contract versions" in table.stdout and "evolved" in table.stdout


def test_the_help_teaches_both_forms_and_a_source_named_history_is_reachable(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "gyre.yaml").write_text(
        "project: shop\nsources:\n  history: {type: csv, path: 'in/*.csv'}\n"
    )
    drop(tmp_path, "1.csv", FIRST)
    helped = cli(None, tmp_path, "ingest", "--help")
    assert (
        "gyre ingest history SOURCE" in helped.stdout and "gyre ingest -- history" in helped.stdout
    )
    runner = CliRunner(env={"GYRE_STORE_URL": workspace_store_url})
    where = ["--project", str(tmp_path)]
    ingested = runner.invoke(app, ["ingest", "--json", *where, "--", "history"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)[0]["accepted"] == 2
    shown = cli(workspace_store_url, tmp_path, "ingest", "history", "history", "--json")
    assert [b["batch"] for b in json.loads(shown.stdout)["batches"]] == ["in/1.csv"]
    unknown = cli(workspace_store_url, tmp_path, "ingest", "history", "nope")
    assert isinstance(unknown.exception, ConfigError)
    assert "no source named 'nope'; known sources: history" in str(unknown.exception)
    missing = cli(workspace_store_url, tmp_path, "ingest", "history")
    assert missing.exit_code == 2


def test_history_of_a_one_off_ingest(tmp_path: Path, workspace_store_url: str | None) -> None:
    (tmp_path / "gyre.yaml").write_text("project: shop\n")
    data = tmp_path / "drop.csv"
    data.write_text(FIRST)
    done = cli(workspace_store_url, tmp_path, "ingest", str(data), "--name", "dropped", "--json")
    assert done.exit_code == 0, done.output
    shown = cli(workspace_store_url, tmp_path, "ingest", "history", "dropped", "--json")
    (batch,) = json.loads(shown.stdout)["batches"]
    assert (batch["status"], batch["accepted"], batch["dataset_version"]) == ("committed", 2, 1)
