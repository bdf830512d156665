"""Preparing the features dataset: SQL output, cache hits on unchanged inputs, lineage."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from tests.support.bikes import FEATURE_COLUMNS as FEATURES

from .conftest import ProjectFactory


def test_prepare_builds_features_from_the_latest_rentals(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")
    (report,) = ws.prepare()

    assert report.dataset == "features"
    assert report.version.ref == "features@1"
    assert report.inputs == ("rentals@2",)
    assert report.cached is False
    rentals = ws.read_dataset("rentals")
    features = ws.read_dataset("features")
    assert features.column_names == FEATURES
    assert features.num_rows == rentals.num_rows == report.version.record.row_count
    assert features.schema.field("dteday").type.equals(pa.date32())

    # Spot-check the SQL against the raw rows, independently of DuckDB.
    by_key = {(r["dteday"], r["hr"]): r for r in rentals.to_pylist()}
    for row in features.slice(0, 200).to_pylist():
        raw = by_key[(row["dteday"], row["hr"])]
        assert row["temp_c"] == round(raw["temp"] * 41, 2)
        assert row["hum_pct"] == round(raw["hum"] * 100, 1)
        assert row["hour_of_week"] == raw["weekday"] * 24 + raw["hr"]
        rush = raw["workingday"] == 1 and raw["hr"] in (7, 8, 9, 16, 17, 18, 19)
        assert row["is_rush_hour"] == int(rush)
        assert row["cnt"] == raw["cnt"]
    days = features["dteday"].to_pylist()
    assert days == sorted(days)
    assert min(days) == dt.date(2011, 2, 1) and max(days) == dt.date(2011, 3, 31)
    assert dt.date(2011, 3, 10) not in days  # every logged hour that day was quarantined

    run, edges = ws.run(report.run_id)
    assert (run.kind, run.job, run.status) == ("prepare", "features", "completed")
    assert edges == {"input": ["dataset:rentals@2"], "output": ["dataset:features@1"]}
    assert run.metrics == {"rows": features.num_rows, "cached": False}


def test_unchanged_inputs_are_a_cache_hit_and_new_data_a_new_version(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")
    (first,) = ws.prepare("features")
    (second,) = ws.prepare("features")

    assert second.cached is True
    assert second.version.ref == first.version.ref == "features@1"
    assert second.version.record.content_id == first.version.record.content_id
    assert second.run_id != first.run_id  # the cache hit is still a recorded run
    assert [v.version for v in ws.dataset_versions("features")] == [1]
    assert ws.run(second.run_id)[0].metrics["cached"] is True

    project.arrive("2011-04")
    ws.ingest("rentals")
    (third,) = ws.prepare("features")
    assert third.cached is False
    assert third.version.ref == "features@2"
    assert third.inputs == ("rentals@3",)
    assert third.version.record.row_count == first.version.record.row_count + 719
    april = ws.read_dataset("features@2").filter(pc.equal(ws.read_dataset("features@2")["mnth"], 4))
    assert april.num_rows == 719


def test_lineage_links_each_features_version_to_the_rentals_version_it_read(
    new_project: ProjectFactory,
) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    project.arrive("2011-04")
    ws.ingest("rentals")
    ws.prepare()

    first = ws.lineage("features@1", direction="upstream")
    assert "dataset:rentals@2" in first.nodes
    assert "dataset:rentals@3" not in first.nodes
    second = ws.lineage("dataset:features@2", direction="upstream")
    assert "dataset:rentals@3" in second.nodes
    prepare_runs = [r for r in second.runs.values() if r.kind == "prepare"]
    assert [r.job for r in prepare_runs] == ["features"]
    assert ("dataset:rentals@3", prepare_runs[0].id) in second.edges
    assert (prepare_runs[0].id, "dataset:features@2") in second.edges

    downstream = ws.lineage("rentals@3", direction="downstream")
    assert "dataset:features@2" in downstream.nodes
    assert "dataset:features@1" not in downstream.nodes
