"""Ingesting the bikes source through the workspace: accounting, quarantine, increments, refusal."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.compute as pc
import pytest

from gyre.core.errors import QuarantineLimitError

from .conftest import ProjectFactory

CONTRACT_COLUMNS = [
    "instant",
    "dteday",
    "season",
    "yr",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
    "casual",
    "registered",
    "cnt",
]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_batch_accounts_for_its_rows_and_march_quarantines_the_humidity_outage(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    (report,) = ws.ingest("rentals")

    assert [b.file for b in report.batches] == [
        "data/incoming/2011-02.csv",
        "data/incoming/2011-03.csv",
    ]
    raw = {m: _csv_rows(project.months[m]) for m in ("2011-02", "2011-03")}
    for batch, month in zip(report.batches, raw, strict=True):
        assert batch.rows_in == len(raw[month])
        assert batch.rows_in == batch.accepted + batch.quarantined + batch.deduplicated
    feb, mar = report.batches
    assert (feb.quarantined, feb.quarantine_version) == (0, None)
    assert mar.quarantined == 22
    assert mar.quarantine_version == "rentals.quarantine@1"
    assert report.rows_in == report.accepted + report.quarantined

    # The quarantine names the file and the exact line; check it against the raw bytes.
    quarantine = ws.read_dataset("rentals.quarantine")
    assert quarantine.num_rows == 22
    assert set(quarantine["file"].to_pylist()) == {"data/incoming/2011-03.csv"}
    assert set(quarantine["column"].to_pylist()) == {"hum"}
    lines = project.months["2011-03"].read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    for line in quarantine["line"].to_pylist():
        fields = dict(zip(header, lines[line - 1].split(","), strict=True))
        assert float(fields["hum"]) == 0.0
        assert fields["dteday"] == "2011-03-10"
    zero_hum_lines = {i + 2 for i, row in enumerate(raw["2011-03"]) if float(row["hum"]) == 0}
    assert set(quarantine["line"].to_pylist()) == zero_hum_lines

    # Accepted rows reach the dataset; quarantined ones never do.
    rentals = ws.read_dataset("rentals")
    assert rentals.num_rows == feb.accepted + mar.accepted == 649 + 708
    assert pc.min(rentals["hum"]).as_py() > 0


def test_versions_are_registered_with_schema_profile_and_accounting(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")

    versions = ws.dataset_versions("rentals")
    assert [v.version for v in versions] == [2, 1]
    v2, v1 = versions
    assert (v1.row_count, v2.row_count) == (649, 649 + 708)
    assert v2.stats["file"] == "data/incoming/2011-03.csv"
    assert v2.stats["rows_in"] == 730
    assert (v2.stats["accepted"], v2.stats["quarantined"]) == (708, 22)
    assert v2.stats["raw_content_id"].startswith("b3:")
    assert (
        ws.artifacts.get_bytes(v2.stats["raw_content_id"]) == project.months["2011-03"].read_bytes()
    )
    assert [c["name"] for c in v2.schema] == CONTRACT_COLUMNS
    assert v1.content_id != v2.content_id
    assert v2.profile is not None
    profiled = {c["name"]: c for c in v2.profile["columns"]}
    assert profiled["hum"]["min"] > 0
    assert profiled["cnt"]["null_count"] == 0

    latest = dict((d.name, v) for d, v in ws.datasets())
    assert latest["rentals"] is not None and latest["rentals"].version == 2
    assert latest["rentals.quarantine"] is not None
    assert latest["rentals.quarantine"].row_count == 22

    runs = ws.runs(kind="ingest")
    assert len(runs) == 2
    assert {r.status for r in runs} == {"completed"}
    assert {r.params["file"] for r in runs} == {
        "data/incoming/2011-02.csv",
        "data/incoming/2011-03.csv",
    }
    march = next(r for r in runs if r.params["file"].endswith("2011-03.csv"))
    assert march.metrics == {"rows_in": 730, "accepted": 708, "quarantined": 22, "deduplicated": 0}
    assert march.code_hash and march.code_hash.startswith("sha256:")


def test_ingest_is_incremental_and_new_files_extend_the_latest_version(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02"])
    ws = project.ws
    (first,) = ws.ingest("rentals")
    assert [b.dataset_version for b in first.batches] == ["rentals@1"]

    (again,) = ws.ingest("rentals")
    assert again.batches == []
    assert again.skipped == ["data/incoming/2011-02.csv"]
    assert [v.version for v in ws.dataset_versions("rentals")] == [1]
    assert len(ws.runs(kind="ingest")) == 1

    project.arrive("2011-04")
    (later,) = ws.ingest("rentals")
    assert later.skipped == ["data/incoming/2011-02.csv"]
    assert [b.file for b in later.batches] == ["data/incoming/2011-04.csv"]
    assert later.batches[0].dataset_version == "rentals@2"

    before = ws.read_dataset("rentals@1")
    after = ws.read_dataset("rentals@2")
    april = ws.read_dataset("rentals@2").slice(before.num_rows)
    assert after.num_rows == before.num_rows + later.batches[0].accepted == 649 + 719
    # The new version is the old rows, unchanged and in order, followed by the new batch.
    assert after.slice(0, before.num_rows).equals(before)
    assert pc.all(pc.equal(april["mnth"], 4)).as_py()
    assert ws.read_dataset("rentals").equals(after)  # latest
    assert ws.read_dataset("rentals@1", head=3).num_rows == 3


def _broken_batch(good: Path, target: Path, every: int) -> int:
    """Write ``good`` with humidity zeroed on every ``every``-th row; returns rows broken."""
    lines = good.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    hum = header.index("hum")
    broken = 0
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        fields = line.rstrip("\n").split(",")
        if i % every == 0:
            fields[hum] = "0"
            broken += 1
        out.append(",".join(fields) + "\n")
    target.write_text("".join(out), encoding="utf-8")
    return broken


def test_a_batch_over_the_quarantine_limit_commits_nothing(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02"])
    ws = project.ws
    ws.ingest("rentals")
    audit_before = len(ws.audit_events())

    bad = project.incoming / "2011-04.csv"
    broken = _broken_batch(project.months["2011-04"], bad, every=10)  # 10% > the 5% limit
    assert broken == 72

    with pytest.raises(QuarantineLimitError) as caught:
        ws.ingest("rentals")
    assert "data/incoming/2011-04.csv" in caught.value.message
    assert "72 of 719 rows" in caught.value.message
    assert caught.value.hint

    # Nothing committed: no version, no quarantine, file not remembered, no audit event.
    assert [v.version for v in ws.dataset_versions("rentals")] == [1]
    assert "rentals.quarantine" not in {d.name for d, _ in ws.datasets()}
    assert "data/incoming/2011-04.csv" not in ws.store.datasets.source_state("rentals")["files"]
    assert len(ws.audit_events()) == audit_before
    failed = ws.runs(kind="ingest")[0]
    assert failed.status == "failed"
    assert failed.params["file"] == "data/incoming/2011-04.csv"
    assert failed.error is not None and failed.error.startswith("QuarantineLimitError")
    assert failed.ended_at is not None

    # The file was not marked seen: once it is fixed, the next ingest takes it.
    bad.write_bytes(project.months["2011-04"].read_bytes())
    (fixed,) = ws.ingest("rentals")
    assert [(b.file, b.accepted, b.quarantined) for b in fixed.batches] == [
        ("data/incoming/2011-04.csv", 719, 0)
    ]
    assert fixed.batches[0].dataset_version == "rentals@2"
