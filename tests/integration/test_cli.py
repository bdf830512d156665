"""The `gyre` command on a real project: JSON output, exit codes, error lines, fast startup.

Commands that exercise the entry point's error handling (one red line, exit status, --debug)
run as real processes (`python -m gyre`); read-only JSON listings run in-process through
Typer's CliRunner, which is the same app object without the process start-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from gyre.cli.main import app

from .conftest import BASE_MONTHS, Project, ProjectFactory, cli_env


def gyre(
    *args: str, store_url: str | None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gyre", *args],
        capture_output=True,
        text=True,
        env=cli_env(store_url),
        cwd=cwd,
        timeout=120,
        check=False,
    )


def cli_json(project: Project, *args: str) -> Any:
    """Run a read-only command in-process with --json and parse its stdout."""
    result = CliRunner().invoke(
        app,
        [*args, "--json", "--project", str(project.root)],
        env={"GYRE_STORE_URL": project.store_url},  # None unsets it: the embedded store
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- reading a released project ----------------------------------------------------------------


def test_datasets_list_and_show(released: Project) -> None:
    listed = cli_json(released, "datasets", "list")
    latest = {item["dataset"]["name"]: item["latest"] for item in listed}
    assert set(latest) == {"features", "rentals", "rentals.quarantine"}
    assert latest["rentals"]["version"] == 3
    assert latest["rentals"]["row_count"] == 649 + 708 + 719
    assert latest["rentals.quarantine"]["row_count"] == 22
    assert latest["features"]["row_count"] == latest["rentals"]["row_count"]

    shown = cli_json(released, "datasets", "show", "rentals", "--head", "3")
    assert (shown["dataset"], shown["version"], shown["versions"]) == ("rentals", 3, [3, 2, 1])
    assert shown["stats"]["file"] == "data/incoming/2011-04.csv"
    raw = released.months["2011-02"].read_text(encoding="utf-8").splitlines()
    header = raw[0].split(",")
    assert [list(row) for row in shown["rows"]] == [header] * 3
    for row, line in zip(shown["rows"], raw[1:4], strict=True):
        fields = dict(zip(header, line.split(","), strict=True))
        assert row["instant"] == int(fields["instant"])
        assert row["dteday"] == fields["dteday"]
        assert row["hum"] == pytest.approx(float(fields["hum"]))
        assert row["cnt"] == int(fields["cnt"])

    first = cli_json(released, "datasets", "show", "rentals@1")
    assert (first["version"], first["row_count"]) == (1, 649)
    # Without --head, --json carries the stored rows (up to 1000): here all 649.
    assert len(first["rows"]) == 649 and first["rows_truncated"] is False
    assert "rows" not in cli_json(released, "datasets", "show", "rentals@1", "--head", "0")


def test_runs_list(released: Project) -> None:
    runs = cli_json(released, "runs", "list")
    kinds = [r["kind"] for r in runs]
    assert sorted(kinds) == sorted(["ingest"] * 3 + ["prepare", "train", "validate", "deploy"])
    assert kinds[0] == "deploy"  # newest first
    assert {r["status"] for r in runs} == {"completed"}
    trains = cli_json(released, "runs", "list", "--kind", "train")
    assert [r["job"] for r in trains] == ["demand"]
    shown = cli_json(released, "runs", "show", trains[0]["id"][:8])
    assert shown["id"] == trains[0]["id"]
    assert (shown["inputs"], shown["outputs"]) == (["dataset:features@1"], ["model:demand:1"])


def test_models_show(released: Project) -> None:
    (version,) = cli_json(released, "models", "show", "demand")
    assert (version["model"], version["version"], version["aliases"]) == ("demand", 1, ["champion"])
    assert version["metrics"]["mae"] < 90
    assert [g["passed"] for g in version["gates"]] == [True]
    assert version["approvals"] == []
    one = cli_json(released, "models", "show", "demand:1")
    assert isinstance(one, dict) and one["package_id"] == version["package_id"]
    (latest,) = cli_json(released, "models", "list")
    assert latest["version"] == 1


def test_lineage_json(released: Project) -> None:
    graph = cli_json(released, "lineage", "endpoint:demand", "--upstream")
    assert graph["root"] == "endpoint:demand"
    nodes = set(graph["nodes"])
    assert {"model:demand:1", "dataset:features@1", "dataset:rentals@3"} <= nodes
    files = sorted(n.split("@", 1)[0] for n in nodes if n.startswith("file:"))
    assert files == [f"file:data/incoming/{m}.csv" for m in BASE_MONTHS]
    run_ids = {r["id"] for r in graph["runs"]}
    assert all(e["from"] in run_ids or e["to"] in run_ids for e in graph["edges"])
    down = cli_json(released, "lineage", "rentals@1", "--downstream")
    assert "endpoint:demand" in down["nodes"]


# -- real processes: exit codes and error lines ------------------------------------------------


def test_init_creates_gyre_yaml_and_the_store(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    target = tmp_path / "fresh"
    result = gyre("init", str(target), store_url=workspace_store_url)
    assert result.returncode == 0, result.stderr
    assert (target / "gyre.yaml").is_file()
    assert (target / ".gyre").is_dir()
    assert "project: fresh" in (target / "gyre.yaml").read_text(encoding="utf-8")
    assert "created" in result.stdout
    listed = gyre("datasets", "list", "--json", "-p", str(target), store_url=workspace_store_url)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_audit_verify_passes_then_names_the_tampered_event(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02", "2011-03"])
    project.ws.ingest("rentals")
    root = str(project.root)

    ok = gyre("audit", "verify", "-p", root, store_url=project.store_url)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout

    with project.ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET entity = 'dataset:forged' WHERE seq = 4"))
    broken = gyre("audit", "verify", "-p", root, store_url=project.store_url)
    assert broken.returncode == 1
    assert "event #4" in broken.stdout
    assert "Traceback" not in broken.stderr
    as_json = gyre("audit", "verify", "--json", "-p", root, store_url=project.store_url)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["first_bad_event"] == 4


def _broken_project(new_project: ProjectFactory) -> tuple[Project, int]:
    project = new_project(["2011-02"])
    config = project.root / "gyre.yaml"
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    (at,) = [i for i, line in enumerate(lines) if line.strip().startswith("trainer: lightgbm")]
    lines[at] = lines[at].replace("trainer: lightgbm", "trainer: lgbm")
    config.write_text("".join(lines), encoding="utf-8")
    return project, at + 1


def test_a_config_error_is_one_line_naming_file_line_and_key(
    new_project: ProjectFactory,
) -> None:
    project, line = _broken_project(new_project)
    result = gyre("ingest", "rentals", "-p", str(project.root), store_url=project.store_url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (error,) = [row for row in result.stderr.splitlines() if row.startswith("error:")]
    assert f"gyre.yaml:{line} models.demand.trainer: unknown trainer 'lgbm'" in error
    assert "hint:" in result.stderr and "lightgbm" in result.stderr
    assert result.stdout == ""

    debug = gyre(
        "--debug", "ingest", "rentals", "-p", str(project.root), store_url=project.store_url
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ConfigError" in debug.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    unknown = gyre("no-such-command", store_url=None, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "No such command" in unknown.stderr
    ambiguous = gyre("ingest", store_url=None, cwd=tmp_path)  # neither SOURCE nor --all
    assert ambiguous.returncode == 2
    assert "name one SOURCE" in ambiguous.stderr and "--all" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr


def test_importing_the_cli_loads_no_heavy_library() -> None:
    heavy = ["pyarrow", "duckdb", "sqlalchemy", "lightgbm", "sklearn", "fastapi", "scipy"]
    probe = (
        "import json, sys\n"
        "import gyre.cli.main\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(result.stdout) == []
    helped = gyre("--help", store_url=None)
    assert helped.returncode == 0
    assert "closed loop" in helped.stdout
