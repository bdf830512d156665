"""Big files read in blocks come out exactly as if read whole.

Each test writes one messy CSV and ingests it into two projects: one where every file is read
whole, one where files are cut into blocks of a few kilobytes (so the file spans dozens of
blocks). The dataset versions must have the same content id (same rows, same Parquet bytes),
the quarantines the same records, and the reports, drift events and profiles the same numbers.
Where blocks could differ (a key repeated across blocks, a Latin-1 byte in a late block, a
quote inside a field) block reading must decline, and the outcome must still be the same.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from gyre.core.errors import DataError, QuarantineLimitError
from gyre.core.settings import Settings
from gyre.ingest import block_run, csv_blocks, large_files
from gyre.workspace import Workspace
from tests.conftest import fresh_postgres_database

CONTRACT = """\
columns:
  - {name: id, type: int, min: 1}
  - {name: qty, type: int, min: 1, max: 99}
  - {name: price, type: float, min: 0}
  - {name: email, type: string, regex: "[a-z0-9.]+@[a-z]+\\\\.com"}
  - {name: country, type: string, allowed: [US, GB, DE]}
  - {name: day, type: date}
  - {name: at, type: timestamp}
  - {name: member, type: bool}
  - {name: note, type: string, nullable: true}
primary_key: [id]
"""
HEADER = "id,qty,price,email,country,day,at,member,note"


def messy_rows(n: int, seed: int, *, start: int = 1) -> list[str]:
    """``n`` data lines with a defect in about one in nine: every rule, ragged rows,
    quoted commas and quoted line breaks, blank lines, non-ASCII text."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        cells = [
            str(i),
            str(rng.randint(1, 99)),
            f"{rng.uniform(0, 500):.2f}",
            f"user{i}@shop.com",
            rng.choice(["US", "GB", "DE"]),
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"2024-05-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:15:00",
            rng.choice(["true", "false", "yes", "0"]),
            rng.choice(["", "plain", '"with, comma"', '"two\nlines"', "café"]),
        ]
        defect = rng.randrange(60)
        if defect == 0:
            cells[1] = rng.choice(["0", "150", "seven"])
        elif defect == 1:
            cells[2] = rng.choice(["-3", "abc", ""])
        elif defect == 2:
            cells[3] = "not-an-email"
        elif defect == 3:
            cells[4] = "FR"
        elif defect == 4:
            cells[5] = "2024-02-30"
        elif defect == 5:
            cells[7] = "maybe"
        elif defect == 6:
            cells = cells[:-1]  # ragged: one field short
        line = ",".join(cells)
        out.append(line)
        if rng.randrange(50) == 0:
            out.append("")  # a blank line Arrow skips
    return out


def write_csv(path: Path, lines: list[str], *, crlf: bool = False) -> Path:
    end = "\r\n" if crlf else "\n"
    path.write_bytes((end.join([HEADER, *lines]) + end).encode("utf-8"))
    return path


def project(
    root: Path,
    store_url: str | None,
    *,
    extra: str = "",
    contract: str = CONTRACT,
    source: str = "    quarantine_limit: 0.5\n",
) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "orders.yaml").write_text(contract + extra)
    (root / "in").mkdir(exist_ok=True)
    (root / "gyre.yaml").write_text(
        "project: shop\nsources:\n  orders:\n    type: csv\n    path: 'in/*.csv'\n"
        "    contract: orders.yaml\n" + source
    )
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(root / ".gyre" / "objects"))
    return Workspace.adopt(root, settings=settings)


def other_store(request: pytest.FixtureRequest, store_url: str | None) -> str | None:
    """A second store like ``store_url`` (on PostgreSQL, one database per project)."""
    return fresh_postgres_database(request) if store_url else None


@pytest.fixture
def blocks_of(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Read every file in blocks of about 4 KB, and count the blocks read."""
    monkeypatch.setattr(large_files, "MIN_FILE_BYTES", 0)
    monkeypatch.setattr(large_files, "BLOCK_BYTES", 4096)
    counted = {"blocks": 0, "whole": 0}
    read = csv_blocks.read_block

    def counting(block: Any, layout: Any) -> Any:
        counted["blocks"] += 1
        return read(block, layout)

    monkeypatch.setattr(block_run, "read_block", counting)
    whole = block_run.LargeFile.__init__

    def spy_init(self: Any, *args: Any, **kwargs: Any) -> None:
        whole(self, *args, **kwargs)
        read_whole = self.whole

        def counted_whole(large: Any) -> Any:
            counted["whole"] += 1
            return read_whole(large)

        self.whole = counted_whole

    monkeypatch.setattr(block_run.LargeFile, "__init__", spy_init)
    return counted


def _outcome(ws: Workspace) -> dict[str, Any]:
    version = ws.dataset("orders")
    names = {record.name for record, _ in ws.datasets()}
    quarantine = (
        ws.read_dataset("orders.quarantine").drop_columns(["quarantined_at"])
        if "orders.quarantine" in names
        else pa.table({})
    )
    events = [
        (e.change, e.column, e.mode, e.action, e.affected, e.detail, e.new_type)
        for e in ws.store.schemas.drift_events("orders")
    ]
    return {
        "content_id": version.record.content_id,
        "rows": ws.read_dataset("orders"),
        "quarantine": quarantine.to_pylist(),
        "events": events,
        "profile": version.record.profile,
        "stats": {k: v for k, v in version.record.stats.items() if k != "raw_content_id"},
    }


def _same_profile(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["row_count"] == b["row_count"]
    for x, y in zip(a["columns"], b["columns"], strict=True):
        for key in x:
            if key in ("mean", "std") and x[key] is not None:
                assert y[key] is not None and math.isclose(x[key], y[key], rel_tol=1e-9), key
            else:
                assert x[key] == y[key], (x["name"], key)


def _ingest_both(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store_url: str | None,
    name: str,
    data: bytes,
    blocks: dict[str, int],
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
    whole_ws = project(tmp_path / "whole", store_url, **options)
    (tmp_path / "whole" / "in" / name).write_bytes(data)
    saved = large_files.MIN_FILE_BYTES
    large_files.MIN_FILE_BYTES = 1 << 62  # the whole project reads files whole
    try:
        whole_report = whole_ws.ingest("orders")[0]
    finally:
        large_files.MIN_FILE_BYTES = saved
    assert blocks["blocks"] == 0
    block_ws = project(tmp_path / "blocks", other_store(request, store_url), **options)
    (tmp_path / "blocks" / "in" / name).write_bytes(data)
    block_report = block_ws.ingest("orders")[0]
    return _outcome(whole_ws), _outcome(block_ws), whole_report, block_report


@pytest.mark.parametrize("kept_bytes", [None, 40_000])
def test_a_messy_file_read_in_blocks_equals_the_file_read_whole(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    kept_bytes: int | None,
) -> None:
    # kept_bytes: the profile keeps some of the blocks' number columns in memory and reads
    # the rest back from the parts (by default it keeps them all).
    if kept_bytes is not None:
        from gyre.ingest import block_run

        monkeypatch.setattr(block_run, "_KEPT_BYTES", kept_bytes)
    data = write_csv(tmp_path / "src.csv", messy_rows(3000, seed=7)).read_bytes()
    whole, blocks, whole_report, block_report = _ingest_both(
        request, tmp_path, workspace_store_url, "orders.csv", data, blocks_of
    )
    assert blocks_of["blocks"] > 20 and blocks_of["whole"] == 0
    assert block_report.as_dict()["rows_in"] == whole_report.as_dict()["rows_in"] == 3000
    assert block_report.quarantined == whole_report.quarantined > 100
    assert block_report.accepted + block_report.quarantined == 3000
    assert blocks["content_id"] == whole["content_id"]
    assert blocks["rows"].equals(whole["rows"])
    assert blocks["quarantine"] == whole["quarantine"]
    assert blocks["events"] == whole["events"]
    assert blocks["stats"] == whole["stats"]
    _same_profile(blocks["profile"], whole["profile"])
    lines = {r["line"] for r in blocks["quarantine"] if r["rule"] == "columns"}
    assert lines, "ragged rows are quarantined with their lines"


def test_crlf_file_with_a_byte_order_mark_reads_the_same_in_blocks(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
) -> None:
    text = write_csv(tmp_path / "src.csv", messy_rows(1500, seed=3), crlf=True).read_bytes()
    whole, blocks, _, _ = _ingest_both(
        request, tmp_path, workspace_store_url, "orders.csv", b"\xef\xbb\xbf" + text, blocks_of
    )
    assert blocks_of["blocks"] > 5 and blocks_of["whole"] == 0
    assert blocks["content_id"] == whole["content_id"]
    assert blocks["quarantine"] == whole["quarantine"]


def _repeat_a_key(data: bytes) -> bytes:
    lines = data.split(b"\n")
    return data + lines[100] + b"\n"


def _latin_1_late(data: bytes) -> bytes:
    at = data.rindex(b"plain")
    return data[:at] + b"caf\xe9" + data[at + 5 :]


def _quote_inside_a_field(data: bytes) -> bytes:
    at = data.index(b"plain", len(data) // 2)
    return data[:at] + b'say "hi"' + data[at + 5 :]


@pytest.mark.parametrize("spoil", [_repeat_a_key, _latin_1_late, _quote_inside_a_field])
def test_files_blocks_could_misread_are_read_whole_with_the_same_outcome(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
    spoil: Any,
) -> None:
    # Plain ASCII otherwise, so a Latin-1 byte makes the whole file Latin-1 (not mixed).
    lines = [
        line.replace('"two\nlines"', "plain").replace("café", "cafe")
        for line in messy_rows(2000, seed=11)
    ]
    data = spoil((HEADER + "\n" + "\n".join(lines) + "\n").encode("utf-8"))
    whole, blocks, _, _ = _ingest_both(
        request, tmp_path, workspace_store_url, "o.csv", data, blocks_of
    )
    assert blocks_of["whole"] == 1, "block reading declined"
    assert blocks["content_id"] == whole["content_id"]
    assert blocks["quarantine"] == whole["quarantine"]
    assert blocks["events"] == whole["events"]


def test_repeated_key_across_blocks_is_quarantined_with_its_first_line(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    lines = messy_rows(800, seed=5)
    good = next(line for line in reversed(lines[:50]) if line.count(",") == 8)
    lines.append(good)  # the same row again, thousands of bytes later
    ws = project(tmp_path / "p", workspace_store_url)
    write_csv(tmp_path / "p" / "in" / "o.csv", lines)
    ws.ingest("orders")
    records = ws.read_dataset("orders.quarantine").to_pylist()
    dup = [r for r in records if r["rule"] == "primary_key"]
    assert len(dup) == 1 and "first seen at line" in dup[0]["reason"]


def test_quarantine_limit_is_judged_over_the_whole_file_and_commits_nothing(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    # Clean at the start, broken at the end: no early block is past the limit on its own.
    lines = [line for line in messy_rows(1200, seed=2) if line.count(",") == 8]
    lines = [line if i < 400 else _foreign(line) for i, line in enumerate(lines)]
    ws = project(tmp_path / "p", workspace_store_url)
    write_csv(tmp_path / "p" / "in" / "o.csv", lines)
    with pytest.raises(QuarantineLimitError, match="Nothing was committed"):
        ws.ingest("orders")
    assert blocks_of["blocks"] > 5
    assert ws.datasets() == []
    assert not ws.store.datasets.source_state("orders")


def _foreign(line: str) -> str:
    for country in (",US,", ",GB,", ",DE,"):
        line = line.replace(country, ",FR,")
    return line


def test_row_bounds_count_every_block(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    lines = [line for line in messy_rows(900, seed=4) if line.count(",") == 8]
    ws = project(tmp_path / "p", workspace_store_url, extra="rows: {max: 500}\n")
    write_csv(tmp_path / "p" / "in" / "o.csv", lines)
    with pytest.raises(DataError, match="rows"):
        ws.ingest("orders")
    assert blocks_of["blocks"] > 5
    assert ws.datasets() == []


def test_a_second_big_file_appends_to_the_version_and_remembers_both(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    ws = project(tmp_path / "p", workspace_store_url)
    write_csv(tmp_path / "p" / "in" / "1.csv", messy_rows(700, seed=8))
    write_csv(tmp_path / "p" / "in" / "2.csv", messy_rows(700, seed=9, start=701))
    reports = ws.ingest("orders")[0]
    assert [b.dataset_version for b in reports.batches] == ["orders@1", "orders@2"]
    rows = ws.read_dataset("orders")
    assert rows.num_rows == reports.accepted
    ids = rows.column("id").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ws.ingest("orders")[0].batches == []  # both files remembered
    state = ws.store.datasets.source_state("orders")
    assert set(state["files"]) == {"in/1.csv", "in/2.csv"}
    assert all(entry["content_id"].startswith("b3:") for entry in state["files"].values())
    profile = ws.dataset("orders").record.profile
    assert profile["row_count"] == rows.num_rows
    assert pa.compute.max(rows.column("id")).as_py() == profile["columns"][0]["max"]


def test_every_row_refused_makes_the_same_empty_first_version(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
) -> None:
    data = (HEADER + "\n" + "\n".join(messy_rows(1500, seed=12)) + "\n").encode()
    no_qty_fits = CONTRACT.replace("allowed: [US, GB, DE]", "allowed: [JP]")
    whole, blocks, _, report = _ingest_both(
        request,
        tmp_path,
        workspace_store_url,
        "o.csv",
        data,
        blocks_of,
        contract=no_qty_fits,
        source="    quarantine_limit: 1\n",
    )
    assert blocks_of["blocks"] > 5 and blocks_of["whole"] == 0
    assert report.accepted == 0 and report.quarantined == 1500
    assert blocks["content_id"] == whole["content_id"]
    assert blocks["quarantine"] == whole["quarantine"]
    _same_profile(blocks["profile"], whole["profile"])


PII_CONTRACT = """\
columns:
  - {name: id, type: int}
  - {name: contact, type: string}
  - {name: person, type: string}
"""


@pytest.mark.parametrize("policy", ["keep", "hash", "drop"])
def test_pii_is_found_over_the_whole_file_not_its_first_block(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    monkeypatch.setenv("GYRE_PII_SECRET", "the same secret for both projects")
    # Contacts are a code in the first blocks, e-mail addresses from row 300 (85% of rows).
    lines = [
        f"{i},{f'c{i}' if i < 300 else f'user{i}@shop.com'},Ada Lovelace{i % 7}"
        for i in range(1, 2001)
    ]
    data = ("id,contact,person\n" + "\n".join(lines) + "\n").encode()
    whole, blocks, whole_report, block_report = _ingest_both(
        request,
        tmp_path,
        workspace_store_url,
        "o.csv",
        data,
        blocks_of,
        contract=PII_CONTRACT,
        source=f"    pii: {{contact: {policy}}}\n",
    )
    assert blocks_of["blocks"] > 5 and blocks_of["whole"] == 0
    assert block_report.batches[0].pii == whole_report.batches[0].pii
    assert "contact" in whole_report.batches[0].pii
    assert blocks["content_id"] == whole["content_id"]
    assert blocks["stats"] == whole["stats"]


def test_drift_events_come_in_the_order_a_whole_read_gives(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
) -> None:
    contract = """\
columns:
  - {name: id, type: int}
  - {name: qty, type: int, nullable: true}
  - {name: day, type: date}
  - {name: note, type: string, nullable: true}
"""
    # A new column, a missing one, and unreadable quantities only late in the file.
    rows = [f"{i},{i % 50 if i < 1500 or i % 97 else 'abc'},2024-01-01,x" for i in range(1, 2500)]
    data = ("id,qty,day,extra\n" + "\n".join(rows) + "\n").encode()
    drift = "    schema_drift: {columns: discard_value, data_type: discard_value}\n"
    whole, blocks, whole_report, block_report = _ingest_both(
        request,
        tmp_path,
        workspace_store_url,
        "o.csv",
        data,
        blocks_of,
        contract=contract,
        source=drift,
    )
    assert blocks_of["whole"] == 0
    changes = [(e["change"], e["column"]) for e in block_report.batches[0].schema_drift]
    assert changes == [(e["change"], e["column"]) for e in whole_report.batches[0].schema_drift]
    assert ("missing_column", "note") in changes and ("type", "qty") in changes
    assert blocks["events"] == whole["events"]


def test_a_large_file_is_one_run_even_when_read_whole_after_all(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    data = (HEADER + "\n" + "\n".join(messy_rows(800, seed=1)) + "\n").encode()
    at = data.index(b"plain", len(data) // 2)
    data = data[:at] + b'say "hi"' + data[at + 5 :]  # declines: a quote inside a field
    ws = project(tmp_path / "p", workspace_store_url)
    (tmp_path / "p" / "in" / "o.csv").write_bytes(data)
    ws.ingest("orders")
    assert blocks_of["whole"] == 1
    runs = ws.runs(kind="ingest")
    assert [r.status for r in runs] == ["completed"]
    assert runs[0].metrics["read_in_blocks"] is False
    assert runs[0].metrics["raw_content_id"].startswith("b3:")
    _, links = ws.run(runs[0].id)
    file_input = f"file:in/o.csv@{runs[0].metrics['raw_content_id']}"
    assert links["input"].count(file_input) == 1  # recorded once, not once per path


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every raw copy started, in order."""
    from gyre.core import raw_copy

    started: list[Any] = []
    init = raw_copy.RawCopy.__init__

    def spy(self: raw_copy.RawCopy, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(raw_copy.RawCopy, "__init__", spy)
    return started


def _incoming(ws: Workspace) -> list[str]:
    folder = Path(ws.artifacts.root) / "incoming"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_one_off_form_stores_the_copy_it_started_ahead_and_discards_it_on_a_rerun(
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
    made: list[Any],
) -> None:
    ws = project(tmp_path / "p", workspace_store_url)
    src = write_csv(tmp_path / "orders.csv", messy_rows(1200, seed=5))
    contract = tmp_path / "p" / "orders.yaml"
    report = ws.ingest_path(str(src), name="shop", contract=contract, quarantine_limit=0.5)
    assert blocks_of["blocks"] > 5 and blocks_of["whole"] == 0
    assert len(made) == 1  # started ahead, and that very copy was stored
    raw_id = ws.dataset("shop").record.stats["raw_content_id"]
    assert ws.artifacts.get_bytes(raw_id) == src.read_bytes()
    assert report.accepted + report.quarantined == 1200
    assert _incoming(ws) == []
    # Again: the file was ingested, so the copy started ahead is stopped and deleted unused.
    blobs = set(ws.artifacts.iter_ids())
    again = ws.ingest_path(str(src), name="shop", contract=contract, quarantine_limit=0.5)
    assert again.batches == [] and again.skipped == [str(src.resolve())]
    assert len(made) == 2 and _incoming(ws) == []
    assert set(ws.artifacts.iter_ids()) == blobs


def test_a_copy_started_ahead_is_stopped_before_a_declined_file_is_read_whole(
    tmp_path: Path,
    workspace_store_url: str | None,
    blocks_of: dict[str, int],
    made: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gyre.ingest.file_source import FileSource

    whole = FileSource._whole
    closed_first: list[bool] = []

    def read_whole(self: FileSource, ctx: Any, large: Any, **kwargs: Any) -> Any:
        closed_first.append(large.copy is None and all(c._blob is None for c in made))
        return whole(self, ctx, large, **kwargs)

    monkeypatch.setattr(FileSource, "_whole", read_whole)
    # A new column under `columns: evolve` (the default) is read whole: its values decide the
    # new type.
    ws = project(tmp_path / "p", workspace_store_url)
    contract = tmp_path / "p" / "orders.yaml"
    lines = [line + ",x" for line in messy_rows(300, seed=4)]
    src = tmp_path / "orders.csv"
    src.write_bytes(("\n".join([HEADER + ",extra", *lines]) + "\n").encode())
    ws.ingest_path(str(src), name="shop", contract=contract, quarantine_limit=0.9)
    assert len(made) == 1 and blocks_of["whole"] == 1
    assert closed_first == [True]
    assert _incoming(ws) == []
    # Without a contract the file is read whole, so no copy is started ahead at all.
    ws.ingest_path(str(write_csv(tmp_path / "b.csv", messy_rows(50, seed=6))), name="other")
    assert len(made) == 1


def test_a_copy_started_ahead_is_not_taken_for_a_changed_file(
    tmp_path: Path, workspace_store_url: str | None, blocks_of: dict[str, int]
) -> None:
    from gyre.ingest.run import ingest_path

    ws = project(tmp_path / "p", workspace_store_url)
    src = write_csv(tmp_path / "orders.csv", messy_rows(400, seed=2))
    ahead = large_files.copy_ahead(str(src), ws.artifacts)
    assert ahead is not None
    write_csv(src, messy_rows(500, seed=3))  # changed after the copy started
    report = ingest_path(
        ws.context,
        str(src),
        name="shop",
        contract=tmp_path / "p" / "orders.yaml",
        quarantine_limit=0.5,
        copy=ahead,
    )
    assert report.accepted + report.quarantined == 500  # the file as it is now
    raw_id = ws.dataset("shop").record.stats["raw_content_id"]
    assert ws.artifacts.get_bytes(raw_id) == src.read_bytes()
    assert ahead._blob is None  # closed by the ingest, which made a copy of its own
    assert _incoming(ws) == []


@pytest.mark.parametrize(
    "where",
    ["s3://bucket/orders.csv", "in/*.csv", "orders.json", "small.csv", "missing.csv"],
)
def test_copy_ahead_only_guesses_big_local_delimited_files(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(large_files, "MIN_FILE_BYTES", 1000)
    ws = project(tmp_path / "p", None)
    (tmp_path / "orders.json").write_text("[" + ",".join(['{"a": 1}'] * 200) + "]")
    (tmp_path / "small.csv").write_text("a,b\n1,2\n")
    (tmp_path / "big.csv").write_text("a,b\n" + "1,2\n" * 500)
    path = where if "://" in where else str(tmp_path / where)
    assert large_files.copy_ahead(path, ws.artifacts) is None
    started = large_files.copy_ahead(str(tmp_path / "big.csv"), ws.artifacts)
    assert started is not None
    started.close()
    assert _incoming(ws) == []
