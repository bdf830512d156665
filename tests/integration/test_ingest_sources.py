"""Ingest through source plugins: file formats, the one-off form, dedup and PII, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gyre.core.errors import ConfigError, QuarantineLimitError
from gyre.core.settings import Settings
from gyre.workspace import Workspace

CONTRACT = """\
columns:
  - {name: id, type: int}
  - {name: email, type: string}
  - {name: amount, type: float, min: 0}
  - {name: updated, type: int}
"""


def _project(tmp_path: Path, store_url: str | None, sources: str) -> Workspace:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "orders.yaml").write_text(CONTRACT)
    (tmp_path / "gyre.yaml").write_text(f"project: shop\nsources:\n{sources}")
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(tmp_path / ".gyre" / "objects"))
    return Workspace.adopt(tmp_path, settings=settings)


def _orders(rows: list[tuple[int, str, float, int]]) -> list[dict[str, object]]:
    return [{"id": i, "email": e, "amount": a, "updated": u} for i, e, a, u in rows]


def test_jsonl_json_and_parquet_files_ingest_through_one_contract(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders: {type: files, path: 'in/*', contract: contracts/orders.yaml,"
        " quarantine_limit: 0.6}\n",
    )
    incoming = tmp_path / "in"
    incoming.mkdir()
    first = _orders([(1, "ann@example.com", 10.0, 1), (2, "bob@example.com", -5.0, 1)])
    (incoming / "a.jsonl").write_text("\n".join(json.dumps(r) for r in first) + "\n")
    (incoming / "b.json").write_text(json.dumps(_orders([(3, "cy@example.com", 7.5, 2)])))
    pq.write_table(
        pa.Table.from_pylist(_orders([(4, "di@example.com", 1.0, 3)])), incoming / "c.parquet"
    )
    (report,) = ws.ingest("orders")
    assert [b.file for b in report.batches] == ["in/a.jsonl", "in/b.json", "in/c.parquet"]
    assert (report.rows_in, report.accepted, report.quarantined) == (4, 3, 1)
    stored = ws.read_dataset("orders")
    assert sorted(stored["id"].to_pylist()) == [1, 3, 4]
    assert stored.schema.field("amount").type == pa.float64()
    refused = ws.read_dataset("orders.quarantine").to_pylist()
    assert refused[0]["file"] == "in/a.jsonl" and refused[0]["column"] == "amount"
    # The e-mail column is recognised and tagged, in the batch report and the version's stats.
    assert report.batches[0].pii == {"email": "email"}
    assert ws.dataset("orders").record.stats["pii"] == {"email": "email"}
    email = next(c for c in ws.dataset("orders").record.schema if c["name"] == "email")
    assert (email["pii"], email["pii_action"]) == ("email", "keep")
    # Running again finds nothing new.
    (again,) = ws.ingest("orders")
    assert again.batches == [] and len(again.skipped) == 3


def test_dedup_keep_first_drops_repeats_within_and_across_batches(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders:\n    type: jsonl\n    path: 'in/*.jsonl'\n"
        "    contract: contracts/orders.yaml\n    dedup: {primary_key: [id]}\n",
    )
    incoming = tmp_path / "in"
    incoming.mkdir()
    rows = [
        (1, "a@x.io", 1.0, 1),
        (1, "a@x.io", 1.0, 1),
        (2, "b@x.io", 2.0, 1),
        (2, "c@x.io", 3.0, 2),
    ]
    (incoming / "1.jsonl").write_text("\n".join(json.dumps(r) for r in _orders(rows)))
    later = [(2, "z@x.io", 9.0, 3), (5, "e@x.io", 5.0, 3)]
    (incoming / "2.jsonl").write_text("\n".join(json.dumps(r) for r in _orders(later)))
    (report,) = ws.ingest("orders")
    first, second = report.batches
    assert (first.rows_in, first.accepted, first.deduplicated) == (4, 2, 2)
    assert (second.rows_in, second.accepted, second.deduplicated) == (2, 1, 1)
    for batch in report.batches:
        assert batch.rows_in == batch.accepted + batch.quarantined + batch.deduplicated
    stored = ws.read_dataset("orders").to_pylist()
    assert sorted((r["id"], r["email"]) for r in stored) == [
        (1, "a@x.io"),
        (2, "b@x.io"),
        (5, "e@x.io"),
    ]


def test_dedup_keep_last_replaces_stored_rows_by_cursor(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders:\n    type: jsonl\n    path: 'in/*.jsonl'\n    contract: contracts/orders.yaml\n"
        "    dedup: {primary_key: [id], keep: last, cursor: updated}\n",
    )
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "1.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _orders([(1, "old@x.io", 1.0, 1), (2, "b@x.io", 2.0, 1)]))
    )
    ws.ingest("orders")
    (incoming / "2.jsonl").write_text(json.dumps(_orders([(1, "new@x.io", 4.0, 2)])[0]))
    (report,) = ws.ingest("orders")
    assert report.batches[0].accepted == 1
    stored = {r["id"]: r["email"] for r in ws.read_dataset("orders").to_pylist()}
    assert stored == {1: "new@x.io", 2: "b@x.io"}
    assert ws.dataset("orders").record.row_count == 2


def test_pii_policy_hashes_and_drops_columns(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders:\n    type: jsonl\n    path: 'in/*.jsonl'\n    contract: contracts/orders.yaml\n"
        "    pii: {email: hash, updated: drop}\n",
    )
    incoming = tmp_path / "in"
    incoming.mkdir()
    rows = _orders([(1, "ann@example.com", 1.0, 1), (2, "ann@example.com", 2.0, 1)])
    (incoming / "1.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ws.ingest("orders")
    stored = ws.read_dataset("orders")
    assert "updated" not in stored.column_names
    hashed = stored["email"].to_pylist()
    assert hashed[0] == hashed[1] and "ann" not in hashed[0]  # same person, still joinable
    secret = tmp_path / ".gyre" / "pii.secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_a_plugin_key_typo_is_reported_with_its_line(tmp_path: Path) -> None:
    ws = _project(tmp_path, None, "  orders:\n    type: csv\n    pth: 'in/*.csv'\n")
    with pytest.raises(ConfigError) as raised:
        ws.config  # noqa: B018
    message = str(raised.value)
    assert "gyre.yaml:5" in message and "pth" in message


def test_a_file_without_contract_keeps_its_columns_as_read(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(tmp_path, workspace_store_url, "  raw: {type: parquet, path: 'in/*.parquet'}\n")
    (tmp_path / "in").mkdir()
    table = pa.table({"k": pa.array([1, 2], pa.int64()), "v": pa.array([0.5, None])})
    pq.write_table(table, tmp_path / "in" / "x.parquet")
    (report,) = ws.ingest("raw")
    assert report.accepted == 2
    assert ws.read_dataset("raw").to_pylist() == table.to_pylist()


def test_the_quarantine_limit_applies_to_every_format(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders: {type: jsonl, path: 'in/*.jsonl', contract: contracts/orders.yaml,"
        " quarantine_limit: 0.1}\n",
    )
    (tmp_path / "in").mkdir()
    bad = _orders([(1, "a@x.io", -1.0, 1), (2, "b@x.io", 2.0, 1)])
    (tmp_path / "in" / "1.jsonl").write_text("\n".join(json.dumps(r) for r in bad))
    with pytest.raises(QuarantineLimitError, match="above the limit"):
        ws.ingest("orders")
    with pytest.raises(Exception, match="no dataset named 'orders'"):
        ws.dataset("orders")


def test_one_off_ingest_from_the_command_line(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    _project(tmp_path, None, "  {}\n")
    data = tmp_path / "drop.csv"
    data.write_text("id,email,amount,updated\n1,a@x.io,3.5,1\n2,b@x.io,oops,1\n3,c@x.io,1.0,2\n")
    env = {**__import__("os").environ}
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gyre",
            "ingest",
            str(data),
            "--name",
            "orders",
            "--quarantine-limit",
            "0.5",
            "--contract",
            str(tmp_path / "contracts" / "orders.yaml"),
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    (report,) = json.loads(run.stdout)
    assert (report["rows_in"], report["accepted"], report["quarantined"]) == (3, 2, 1)
    shown = subprocess.run(
        [sys.executable, "-m", "gyre", "datasets", "show", "orders", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    stored = json.loads(shown.stdout)
    assert [r["id"] for r in stored["rows"]] == [1, 3]
    assert stored["rows_truncated"] is False


def test_a_file_changed_after_ingest_is_reported_not_silently_passed_over(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = _project(tmp_path, workspace_store_url, "  orders: {type: csv, path: 'in/*.csv'}\n")
    (tmp_path / "in").mkdir()
    first = tmp_path / "in" / "a.csv"
    first.write_text("id,amount\n1,2.5\n")
    (report,) = ws.ingest("orders")
    assert report.changed == [] and report.accepted == 1
    first.write_text("id,amount\n1,2.5\n2,9.0\n")  # upstream rewrote the file in place
    env = {**__import__("os").environ, "COLUMNS": "300"}
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    run = subprocess.run(
        [sys.executable, "-m", "gyre", "ingest", "orders", "-p", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "1 file(s) changed after they were ingested" in run.stdout
    assert "in/a.csv" in run.stdout
    assert ws.read_dataset("orders").num_rows == 1  # its rows are not stored twice


def test_follow_polls_a_file_source_until_stopped(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    import threading
    import time

    ws = _project(
        tmp_path,
        workspace_store_url,
        "  orders: {type: csv, path: 'in/*.csv', poll_seconds: 0.2}\n",
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "1.csv").write_text("id,amount\n1,2.5\n")
    stop = threading.Event()
    seen: list[str] = []
    follower = threading.Thread(
        target=lambda: ws.follow("orders", stop=stop, on_batch=lambda b: seen.append(b.file))
    )
    follower.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "in" / "2.csv").write_text("id,amount\n2,3.5\n")  # lands while it follows
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    follower.join(30)
    assert not follower.is_alive()
    assert seen == ["in/1.csv", "in/2.csv"]
    assert sorted(ws.read_dataset("orders")["id"].to_pylist()) == ["1", "2"]  # no contract: text
