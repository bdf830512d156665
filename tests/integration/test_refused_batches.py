"""``on_refused_batch``: a batch refused as a whole either stops the run and commits nothing
(``fail``, the default) or is committed with every row in the quarantine (``quarantine``), so a
stream moves on instead of receiving the same refused messages forever."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from gyre.core.errors import BatchRefusedError, QuarantineLimitError
from gyre.core.settings import Settings
from gyre.workspace import Workspace
from tests.conftest import fresh_postgres_database, require_service

CONTRACT = """\
columns:
  - {name: id, type: int}
  - {name: temp, type: float, min: -50, max: 150}
"""
GOOD = "id,temp\n1,20.5\n2,21.0\n3,19.5\n4,22.0\n"
BROKEN = "id,temp\n5,900\n6,hot\n7,23.0\n8,999\n"  # 3 of 4 rows break the contract


def project(root: Path, store_url: str | None, source: str, contract: str = CONTRACT) -> Workspace:
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    (root / "contracts" / "readings.yaml").write_text(contract)
    (root / "in").mkdir(exist_ok=True)
    (root / "gyre.yaml").write_text(f"project: plant\nsources:\n  readings:\n{source}")
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(root / ".gyre" / "objects"))
    return Workspace.adopt(root, settings=settings)


def files_source(policy: str | None) -> str:
    line = f"    on_refused_batch: {policy}\n" if policy else ""
    return (
        "    type: csv\n    path: 'in/*.csv'\n    contract: contracts/readings.yaml\n"
        "    quarantine_limit: 0.25\n" + line
    )


def test_by_default_a_refused_batch_commits_nothing(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, files_source(None))
    (tmp_path / "in" / "1.csv").write_text(BROKEN)
    with pytest.raises(QuarantineLimitError, match="Nothing was committed"):
        ws.ingest("readings")
    assert ws.datasets() == []


def test_a_refused_file_is_quarantined_whole_and_replayed_after_the_fix(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, files_source("quarantine"))
    (tmp_path / "in" / "1.csv").write_text(GOOD)
    (tmp_path / "in" / "2.csv").write_text(BROKEN)
    (tmp_path / "in" / "3.csv").write_text(GOOD.replace("1,", "9,").replace("2,", "10,"))
    (report,) = ws.ingest("readings")
    first, refused, third = report.batches
    assert first.refused is None and third.refused is None
    assert (refused.rows_in, refused.accepted, refused.quarantined) == (4, 0, 4)
    assert refused.refused is not None and "above the limit of 25.0%" in refused.refused
    assert report.rows_in == report.accepted + report.quarantined == 12
    records = ws.quarantine_records("readings").to_pylist()
    assert [(r["line"], r["rule"]) for r in records] == [(i, "batch_refused") for i in (2, 3, 4, 5)]
    assert all(r["raw"] and "refused as a whole" in r["reason"] for r in records)
    assert ws.ingest("readings")[0].batches == []  # the refused file counts as ingested
    assert ws.read_dataset("readings").num_rows == 8

    # The contract was too strict about temperatures: widen it, then replay row by row.
    (tmp_path / "contracts" / "readings.yaml").write_text(CONTRACT.replace("max: 150", "max: 950"))
    replayed = ws.replay_quarantine("readings")
    assert replayed.accepted == 2  # 900 and 23.0 pass now; 'hot' and 999 stay refused
    temps = sorted(ws.read_dataset("readings").column("temp").to_pylist())
    assert 900.0 in temps and 23.0 in temps and len(temps) == 10
    left = ws.quarantine_records("readings").to_pylist()
    # The rows still refused now say which rule each breaks.
    assert [(r["line"], r["column"], r["rule"]) for r in left] == [
        (3, "temp", "type"),
        (5, "temp", "max"),
    ]
    assert all(r["raw"] for r in left)


def test_replay_explains_held_back_rows_even_when_none_passes(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    ws = project(tmp_path, workspace_store_url, files_source("quarantine"))
    (tmp_path / "in" / "1.csv").write_text("id,temp\n5,900\n6,hot\n8,999\n")
    ws.ingest("readings")
    held = ws.quarantine_records("readings").to_pylist()
    assert {r["rule"] for r in held} == {"batch_refused"}
    report = ws.replay_quarantine("readings")
    assert (report.accepted, report.still_quarantined) == (0, 3)
    rules = sorted((r["line"], r["rule"]) for r in ws.quarantine_records("readings").to_pylist())
    assert rules == [(2, "max"), (3, "type"), (4, "max")]
    again = ws.replay_quarantine("readings")  # nothing new to say: no new version
    assert again.accepted == 0 and again.quarantine_version == report.quarantine_version


def test_a_batch_outside_the_row_bounds_is_quarantined_whole(
    request: pytest.FixtureRequest, tmp_path: Path, workspace_store_url: str | None
) -> None:
    contract = CONTRACT + "rows: {min: 10}\n"
    ws = project(tmp_path, workspace_store_url, files_source("quarantine"), contract)
    (tmp_path / "in" / "1.csv").write_text(GOOD)
    (batch,) = ws.ingest("readings")[0].batches
    assert batch.accepted == 0 and batch.quarantined == 4
    assert batch.refused is not None and "fewer than the contract's minimum of 10" in batch.refused
    other = fresh_postgres_database(request) if workspace_store_url else None
    without = project(tmp_path / "strict", other, files_source(None), contract)
    (tmp_path / "strict" / "in" / "1.csv").write_text(GOOD)
    with pytest.raises(BatchRefusedError, match=r"rows\.min"):
        without.ingest("readings")


@pytest.mark.streams
def test_a_refused_stream_batch_is_acknowledged_and_the_stream_moves_on(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis()
    key = f"gyre-test-{uuid.uuid4().hex}"
    try:
        temps = ["20", "900", "hot", "21", "22", "23"]  # the first batch of 3 breaks the limit
        for i, temp in enumerate(temps, start=1):
            client.xadd(key, {"id": str(i), "temp": temp})
        source = (
            f"    {{type: redis, stream: {key}, contract: contracts/readings.yaml,"
            " idle_seconds: 0.5, batch_messages: 3, quarantine_limit: 0.5,"
            " on_refused_batch: quarantine}\n"
        )
        ws = project(tmp_path, workspace_store_url, source)
        (report,) = ws.ingest("readings")
        assert [(b.accepted, b.quarantined, b.refused is not None) for b in report.batches] == [
            (0, 3, True),
            (3, 0, False),
        ]
        client.xadd(key, {"id": "7", "temp": "23"})
        (again,) = ws.ingest("readings")  # resumes after the refused batch: not delivered again
        assert [b.rows_in for b in again.batches] == [1]
        ids: list[Any] = sorted(ws.read_dataset("readings").column("id").to_pylist())
        assert ids == [4, 5, 6, 7]
    finally:
        client.delete(key)
        client.close()


@pytest.mark.parametrize("blocks", [False, True])
def test_a_batch_run_completes_in_the_transaction_that_commits_it(
    tmp_path: Path,
    workspace_store_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
    blocks: bool,
) -> None:
    # A kill right after the commit must not leave the run of a committed batch "running":
    # the moment commit_version returns, the run is completed, with its final metrics.
    from gyre.ingest import commit, large_files

    if blocks:
        monkeypatch.setattr(large_files, "MIN_FILE_BYTES", 1)
    seen: list[Any] = []
    original = commit.commit_version

    def committed(ctx: Any, tracked: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(ctx, tracked, *args, **kwargs)
        seen.append(ctx.store.runs.get(tracked.id))
        return result

    monkeypatch.setattr(commit, "commit_version", committed)
    ws = project(tmp_path, workspace_store_url, files_source(None))
    (tmp_path / "in" / "1.csv").write_text(GOOD)
    ws.ingest("readings")
    (record,) = seen
    assert record.status == "completed"
    assert record.metrics["rows_in"] == 4 and record.metrics["accepted"] == 4
    assert ("read_in_blocks" in record.metrics) is blocks
