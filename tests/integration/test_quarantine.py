"""The quarantine: list and show refused rows, replay them after the contract is fixed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gyre.cli.main import app
from gyre.core.errors import UsageError
from gyre.datasets.catalog import profile_parts
from gyre.workspace import Workspace

from .conftest import ProjectFactory


def test_refused_rows_are_listed_shown_and_replayed_after_a_fix(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")
    (summary,) = ws.quarantine()
    assert (summary.source, summary.rows, summary.records) == ("rentals", 22, 22)
    assert summary.by_rule == {"hum exclusive_min": 22}
    shown = ws.quarantine_records("rentals", limit=3).to_pylist()
    assert [r["file"] for r in shown] == ["data/incoming/2011-03.csv"] * 3
    raw = json.loads(shown[0]["raw"])
    assert raw["hum"] == "0" and raw["dteday"] == "2011-03-10"  # the row exactly as read
    _profiled_like_its_parts(ws, "rentals.quarantine", rows=22)
    before = ws.dataset("rentals").record

    # Nothing changed yet: replay finds every row still refused and moves nothing.
    unchanged = ws.replay_quarantine("rentals")
    assert (unchanged.replayed, unchanged.accepted, unchanged.still_quarantined) == (22, 0, 22)
    assert ws.dataset("rentals").record.version == before.version

    # The sensor outage is judged real data after all: allow hum = 0, then replay.
    contract = project.root / "contracts" / "rentals.yaml"
    contract.write_text(contract.read_text().replace("exclusive_min: 0, max: 1", "min: 0, max: 1"))
    report = ws.replay_quarantine("rentals")
    assert (report.replayed, report.accepted, report.still_quarantined) == (22, 22, 0)
    after = ws.dataset("rentals").record
    assert after.row_count == before.row_count + 22
    assert ws.read_dataset("rentals.quarantine").num_rows == 0
    _profiled_like_its_parts(ws, "rentals.quarantine", rows=0)
    assert ws.quarantine()[0].rows == 0
    hum = ws.read_dataset("rentals").column("hum").to_pylist()
    assert hum.count(0.0) == 22
    # The replay is a run with lineage from the old quarantine to the new versions.
    edges = ws.run(report.run_id)[1]
    assert "dataset:rentals.quarantine@1" in edges["input"]
    assert f"dataset:{after.dataset}@{after.version}" in edges["output"]


def _profiled_like_its_parts(ws: Workspace, name: str, *, rows: int) -> None:
    """A quarantine version's profile (a first one is made from the records in memory) is
    the profile of what was stored."""
    version = ws.dataset(name)
    stored = profile_parts(ws.artifacts, version.manifest).model_dump(mode="json")
    assert version.record.profile == stored
    assert stored["row_count"] == rows


def test_quarantine_commands(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02", "2011-03"])
    project.ws.ingest("rentals")
    # In-process: hand the CLI this project's store (None unsets it: the embedded store).
    runner = CliRunner(env={"GYRE_STORE_URL": project.store_url})
    where = ["--project", str(project.root), "--json"]
    listed = runner.invoke(app, ["quarantine", "list", *where])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["rows"] == 22
    shown = runner.invoke(app, ["quarantine", "show", "rentals", "--limit", "2", *where])
    assert [r["rule"] for r in json.loads(shown.output)] == ["exclusive_min"] * 2


def test_contract_infer_from_a_source_then_ingest_with_it(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02"])
    runner = CliRunner(env={"GYRE_STORE_URL": project.store_url})
    out = project.root / "contracts" / "inferred.yaml"
    inferred = runner.invoke(
        app, ["contract", "infer", "rentals", "-o", str(out), "--project", str(project.root)]
    )
    assert inferred.exit_code == 0, inferred.output
    text = out.read_text()
    assert "name: hum" in text and "name: dteday" in text
    refused = runner.invoke(
        app, ["contract", "infer", "rentals", "-o", str(out), "--project", str(project.root)]
    )
    # An existing file is not overwritten without --force (main() maps this to exit 2).
    assert isinstance(refused.exception, UsageError)
    from gyre.ingest.contract import load_contract
    from gyre.ingest.csv_batch import ingest_batch

    batch = ingest_batch(project.months["2011-02"], load_contract(out))
    assert (batch.rows_in, batch.quarantined) == (batch.accepted, 0)
