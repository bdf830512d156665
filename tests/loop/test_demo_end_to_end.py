"""`gyre demo` end to end: real processes, real HTTP, real data, then inspect what it left.

One demo run (about a minute) is shared by every test in this module: it is the acceptance test
of the spine. It runs through the CLI exactly as a newcomer would, with the store on SQLite or,
when the suite runs with GYRE_STORE_URL=postgresql..., on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.openlineage import validate_event

pytestmark = pytest.mark.slow


def gyre(
    *args: str, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gyre", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gyre {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, request: pytest.FixtureRequest
) -> tuple[Path, dict[str, Any], dict[str, str]]:
    env = dict(os.environ)
    if env.get("GYRE_STORE_URL", "").startswith("postgresql"):
        # A module-scoped fresh database: borrow the function-scoped fixture's machinery.
        from tests.conftest import fresh_postgres_database

        env["GYRE_STORE_URL"] = fresh_postgres_database(request)
    project = tmp_path_factory.mktemp("demo") / "bikes"
    result = gyre(
        "demo",
        str(project),
        "--data",
        str(shared_data / "drift" / "bike-sharing"),
        "--json",
        cwd=project.parent,
        env=env,
    )
    summary: dict[str, Any] = json.loads(result.stdout)
    return project, summary, env


def test_every_row_is_accounted_for_and_the_sensor_outage_is_quarantined(
    demo: tuple[Path, dict[str, Any], dict[str, str]],
) -> None:
    _, summary, _ = demo
    ingest = summary["ingest"]
    assert ingest["rows_in"] == 17379
    assert ingest["rows_in"] == ingest["accepted"] + ingest["quarantined"] + ingest["deduplicated"]
    quarantine = summary["quarantine"]
    assert quarantine["rows"] == 22
    assert quarantine["example"]["column"] == "hum"
    assert quarantine["example"]["file"].endswith("2011-03.csv")


def test_drift_is_detected_and_an_alert_triggers_a_retrain(
    demo: tuple[Path, dict[str, Any], dict[str, str]],
) -> None:
    _, summary, _ = demo
    months = summary["months"]
    assert len(months) == 18  # 24 months minus the 6 the first model trained on
    assert all(m["predictions"] > 600 for m in months)
    assert any("temp_c" in m["drifted_features"] for m in months)
    assert any("performance" in m["alerts"] for m in months)
    retrains = [a for a in summary["actions"] if a["promoted"]]
    assert retrains, "a performance alert should have produced a promoted retrain"
    for action in retrains:
        # The gate compared both models on the candidate's own holdout, and the candidate won.
        assert action["candidate_metrics"]["mae"] <= action["champion_on_same_holdout"]["mae"]
        assert action["server_swap_seconds"] is not None  # picked up without a restart
    served = {m["served_by"] for m in months}
    assert len(served) >= 2, "the server should have served more than one version"


def test_the_loop_beats_the_first_model_on_the_months_that_followed(
    demo: tuple[Path, dict[str, Any], dict[str, str]],
) -> None:
    _, summary, _ = demo
    before_after = summary["error_before_after"]
    assert before_after["retrained"] is True
    assert before_after["served_by_loop_mae"] < before_after["first_model_mae"]
    first = summary["model_versions"][0]
    champion = summary["champion"]
    assert champion != f"demand:{first['version']}"


def test_the_audit_trail_verifies_and_catches_an_edit(
    demo: tuple[Path, dict[str, Any], dict[str, str]], tmp_path: Path
) -> None:
    project, summary, env = demo
    assert summary["audit"]["verified"] is True
    listing = json.loads(
        gyre("audit", "list", "--limit", "0", "--json", cwd=project, env=env).stdout
    )
    actions = {e["action"] for e in listing}
    for expected in (
        "dataset_version.registered",
        "model_version.registered",
        "alias.moved",
        "gate.passed",
        "deployment.traffic",
        "alert.raised",
    ):
        assert expected in actions
    assert gyre("audit", "verify", cwd=project, env=env).returncode == 0
    if env.get("GYRE_STORE_URL", "").startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(env["GYRE_STORE_URL"])
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"))
        engine.dispose()
    else:
        with sqlite3.connect(project / ".gyre" / "gyre.db") as db:
            db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
    broken = gyre("audit", "verify", cwd=project, env=env, check=False)
    assert broken.returncode == 1
    assert "event #7" in broken.stdout


def test_lineage_reaches_from_the_endpoint_back_to_the_raw_files(
    demo: tuple[Path, dict[str, Any], dict[str, str]],
) -> None:
    project, summary, env = demo
    graph = json.loads(
        gyre("lineage", "endpoint:demand", "--upstream", "--json", cwd=project, env=env).stdout
    )
    nodes = graph["nodes"]
    kinds = {run["kind"] for run in graph["runs"]}
    assert {"deploy", "train", "prepare", "ingest"} <= kinds
    assert any(n.startswith("model:demand:") for n in nodes)
    assert any(n.startswith("dataset:features@") for n in nodes)
    assert any(n.startswith("dataset:rentals@") for n in nodes)
    raw = [n for n in nodes if n.startswith("file:data/incoming/")]
    assert raw and all("@b3:" in n for n in raw)
    assert summary["lineage"]["raw_files"] == len(raw)


def test_every_run_emitted_valid_openlineage_events(
    demo: tuple[Path, dict[str, Any], dict[str, str]],
) -> None:
    project, _, env = demo
    lines = (project / ".gyre" / "lineage" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    runs = json.loads(
        gyre("runs", "list", "--limit", "1000", "--json", cwd=project, env=env).stdout
    )
    assert len(events) == 2 * len(runs)  # START and COMPLETE for each run
    by_run: dict[str, list[str]] = {}
    for event in events:
        validate_event(event)
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert all(types == ["START", "COMPLETE"] for types in by_run.values())


def test_stored_things_are_inspectable(demo: tuple[Path, dict[str, Any], dict[str, str]]) -> None:
    project, summary, env = demo
    shown = json.loads(
        gyre(
            "datasets", "show", "rentals.quarantine", "--head", "3", "--json", cwd=project, env=env
        ).stdout
    )
    assert shown["row_count"] == 22 and len(shown["rows"]) == 3
    assert all(row["rule"] == "exclusive_min" for row in shown["rows"])
    models = json.loads(gyre("models", "show", "demand", "--json", cwd=project, env=env).stdout)
    assert len(models) == len(summary["model_versions"])
    assert [m["version"] for m in models] == sorted((m["version"] for m in models), reverse=True)
    assert all(m["gates"] for m in models)
    champion = next(m for m in models if "champion" in m["aliases"])
    assert f"demand:{champion['version']}" == summary["champion"]
