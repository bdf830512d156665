"""The workspace as one system: lineage end to end, the audit chain, OpenLineage events, opening."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import blake3
import pytest
from sqlalchemy import text

from gyre.core.errors import NotFoundError, QuarantineLimitError, UsageError, WorkspaceError
from gyre.workspace import Workspace, find_root
from tests.support.openlineage import validate_event

from .conftest import BASE_MONTHS, Project, ProjectFactory

# -- lineage ----------------------------------------------------------------------------------


def _file_node(project: Project, month: str) -> str:
    digest = blake3.blake3(project.months[month].read_bytes()).hexdigest()
    return f"file:data/incoming/{month}.csv@b3:{digest}"


def test_upstream_of_the_endpoint_reaches_every_raw_file(released: Project) -> None:
    graph = released.ws.lineage("endpoint:demand", direction="upstream")

    for node in (
        "endpoint:demand",
        "model:demand:1",
        "dataset:features@1",
        "dataset:rentals@3",
        "source:rentals",
    ):
        assert node in graph.nodes, node
    # Every row the model learned from is traceable to the exact bytes of its file, not only the
    # last batch: rentals@3 is rentals@2 plus April, so it descends from all three files.
    for month in BASE_MONTHS:
        assert _file_node(released, month) in graph.nodes, month
    kinds = {r.kind for r in graph.runs.values()}
    assert kinds == {"ingest", "prepare", "train", "deploy"}
    assert len([r for r in graph.runs.values() if r.kind == "ingest"]) == 3
    # Upstream only: nothing made from the endpoint, no validate run (it outputs nothing).
    assert all(r.status == "completed" for r in graph.runs.values())


def test_downstream_of_the_first_batch_reaches_the_serving_endpoint(released: Project) -> None:
    graph = released.ws.lineage("rentals@1", direction="downstream")
    for node in (
        "dataset:rentals@2",
        "dataset:rentals@3",
        "dataset:features@1",
        "model:demand:1",
        "endpoint:demand",
    ):
        assert node in graph.nodes, node
    assert not any(n.startswith("file:") for n in graph.nodes)  # files are upstream only
    both = released.ws.lineage("model:demand:1")
    assert {"dataset:features@1", "endpoint:demand"} <= both.nodes
    as_json = json.loads(json.dumps(both.as_dict()))
    assert as_json["root"] == "model:demand:1"
    train = [r for r in as_json["runs"] if r["kind"] == "train"]
    assert len(train) == 1
    assert {"from": train[0]["id"], "to": "model:demand:1"} in as_json["edges"]


def test_lineage_refuses_unknown_or_malformed_references(released: Project) -> None:
    with pytest.raises(NotFoundError, match="no lineage"):
        released.ws.lineage("rentals@99")
    with pytest.raises(UsageError):
        released.ws.lineage("dataset:rentals")


# -- audit ------------------------------------------------------------------------------------


def test_a_full_flow_leaves_an_intact_audit_trail(released: Project) -> None:
    checked, problem = released.ws.verify_audit()
    assert problem is None
    events = released.ws.audit_events()
    assert checked == len(events) > 10
    assert [e.seq for e in events] == list(range(1, checked + 1))
    actions = [e.action for e in events]
    for action in (
        "dataset_version.registered",
        "model_version.registered",
        "gate.passed",
        "alias.moved",
        "deployment.traffic",
    ):
        assert action in actions
    # Order tells the story: the version is gated before the alias moves to it.
    assert actions.index("gate.passed") < actions.index("alias.moved")
    moved = events[actions.index("alias.moved")]
    assert moved.entity == "model:demand@champion"
    assert moved.data == {"from_version": None, "to_version": 1, "reason": "initial release"}


def test_editing_one_stored_event_is_reported_by_number(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02", "2011-03"])
    ws = project.ws
    ws.ingest("rentals")
    checked, problem = ws.verify_audit()
    assert problem is None and checked >= 4

    with ws.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    checked, problem = ws.verify_audit()
    assert problem is not None
    assert problem.seq == 3
    assert "changed" in problem.reason
    assert checked == 3  # it stops at the first bad event


def test_deleting_the_newest_event_is_caught_by_the_head(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02"])
    ws = project.ws
    ws.ingest("rentals")
    last = ws.audit_events()[-1].seq
    with ws.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": last})
    _, problem = ws.verify_audit()
    assert problem is not None
    assert problem.seq == last
    assert "deleted" in problem.reason


# -- OpenLineage --------------------------------------------------------------------------------


def _events(ws: Workspace) -> list[dict[str, Any]]:
    lines = ws.paths.lineage_events.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_every_run_emitted_start_then_complete(released: Project) -> None:
    events = _events(released.ws)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event)
    runs = released.ws.runs(limit=1000)
    assert set(by_run) == {r.id for r in runs}
    for run in runs:
        sequence = by_run[run.id]
        assert [e["eventType"] for e in sequence] == ["START", "COMPLETE"], run.kind
        assert {e["job"]["name"] for e in sequence} == {f"bikes.{run.kind}.{run.job}"}
        assert sequence[0]["eventTime"] <= sequence[1]["eventTime"]
        _, edges = released.ws.run(run.id)
        complete = sequence[1]
        assert sorted(d["name"] for d in complete["inputs"]) == sorted(edges["input"])
        assert sorted(d["name"] for d in complete["outputs"]) == sorted(edges["output"])
    for event in events:
        validate_event(event)  # the official schema and every facet's own

    train = next(r for r in runs if r.kind == "train")
    complete = by_run[train.id][1]
    (model,) = complete["outputs"]
    assert model["name"] == "model:demand:1"
    package = released.ws.model("demand:1")[0].package_id
    assert model["facets"]["version"]["datasetVersion"] == package


def test_a_failed_run_emits_fail_with_its_error(new_project: ProjectFactory) -> None:
    project = new_project(["2011-02"])
    lines = project.months["2011-03"].read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    broken = [r.replace(",0.", ",9.", 1) if i % 4 == 0 else r for i, r in enumerate(rows)]
    (project.incoming / "2011-03.csv").write_text(header + "".join(broken), encoding="utf-8")
    with pytest.raises(QuarantineLimitError):
        project.ws.ingest("rentals")

    failed = project.ws.runs(kind="ingest")[0]
    assert failed.status == "failed"
    sequence = [e for e in _events(project.ws) if e["run"]["runId"] == failed.id]
    assert [e["eventType"] for e in sequence] == ["START", "FAIL"]
    error = sequence[1]["run"]["facets"]["errorMessage"]
    assert error["message"].startswith("QuarantineLimitError")
    assert error["programmingLanguage"].lower() == "python"
    for event in sequence:
        validate_event(event)  # the official schema and every facet's own


# -- opening -------------------------------------------------------------------------------------


def test_open_finds_the_project_from_a_subfolder(released: Project) -> None:
    nested = released.root / "data" / "incoming"
    assert find_root(nested) == released.root
    ws = Workspace.open(nested, settings=released.ws.settings)
    try:
        assert ws.paths.root == released.root
        assert ws.config.project == "bikes"
        assert ws.model("demand:1")[0].aliases == ("champion",)
        assert [v.version for v in ws.dataset_versions("rentals")] == [3, 2, 1]
    finally:
        ws.close()


def test_the_workspace_runs_on_the_backend_under_test(
    new_project: ProjectFactory, workspace_store_url: str | None
) -> None:
    project = new_project(["2011-02"])
    project.ws.ingest("rentals")
    dialect = project.ws.store.engine.dialect.name
    assert dialect == ("postgresql" if workspace_store_url else "sqlite")
    assert (project.root / ".gyre" / "gyre.db").is_file() is (workspace_store_url is None)
    assert project.ws.artifacts.exists(project.ws.dataset("rentals@1").record.content_id)


def test_open_and_adopt_refuse_a_folder_without_a_project(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"no gyre\.yaml"):
        Workspace.open(tmp_path)
    with pytest.raises(WorkspaceError, match="does not exist"):
        Workspace.adopt(tmp_path)
    assert not (tmp_path / ".gyre").exists()


def test_init_writes_a_loadable_project(tmp_path: Path, workspace_store_url: str | None) -> None:
    from .conftest import settings_for

    root = tmp_path / "fresh"
    ws = Workspace.init(root, settings=settings_for(root, workspace_store_url))
    try:
        assert (root / "gyre.yaml").is_file()
        assert (root / ".gyre").is_dir()
        assert ws.config.project == "fresh"
        assert ws.datasets() == []
        assert ws.verify_audit() == (0, None)
    finally:
        ws.close()
