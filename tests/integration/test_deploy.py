"""Moving the champion alias: promotions, rollback, and the audit trail they leave."""

from __future__ import annotations

import pytest

from gyre.core.errors import NotFoundError

from .conftest import Project, ProjectFactory, without_beat_champion


def test_rollback_returns_the_alias_to_the_earlier_version(new_project: ProjectFactory) -> None:
    project = new_project(edit=without_beat_champion)
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    assert project.release("first release") == 1
    assert project.release("second release") == 2
    assert ws.store.models.alias("demand", "champion").version == 2  # type: ignore[union-attr]

    back = ws.rollback("demand", reason="v2 misbehaves")
    assert (back.model, back.alias, back.version, back.previous) == ("demand", "champion", 1, 2)
    assert back.endpoints == ("demand",)
    champion = ws.store.models.alias("demand", "champion")
    assert champion is not None and champion.version == 1
    assert ws.model("demand:2")[0].aliases == ()

    moves = [e for e in ws.audit_events() if e.action == "alias.moved"]
    assert [e.entity for e in moves] == ["model:demand@champion"] * 3
    assert [e.data for e in moves] == [
        {"from_version": None, "to_version": 1, "reason": "first release"},
        {"from_version": 1, "to_version": 2, "reason": "second release"},
        {"from_version": 2, "to_version": 1, "reason": "v2 misbehaves"},
    ]
    traffic = [d.traffic for d in ws.store.operations.deployments("demand")]
    assert [t["versions"][0]["version"] for t in traffic] == [1, 2, 1]
    assert [t["reason"] for t in traffic] == ["first release", "second release", "v2 misbehaves"]
    assert traffic[-1]["previous_version"] == 2

    run, edges = ws.run(back.run_id)
    assert (run.kind, run.job, run.status) == ("rollback", "demand@champion", "completed")
    assert run.params == {"version": 1, "previous": 2, "reason": "v2 misbehaves"}
    assert edges == {"input": ["model:demand:1"], "output": ["endpoint:demand"]}

    # The endpoint's lineage now shows both versions that served it.
    upstream = ws.lineage("endpoint:demand", direction="upstream")
    assert {"model:demand:1", "model:demand:2"} <= upstream.nodes

    # Promoting by name takes the latest version (validated already) back to the alias.
    again = ws.promote("demand", reason="v2 fixed upstream")
    assert (again.version, again.previous) == (2, 1)
    assert ws.verify_audit()[1] is None


def test_rollback_without_an_earlier_version_is_refused(released: Project) -> None:
    with pytest.raises(NotFoundError, match="has served only demand:1"):
        released.ws.rollback("demand", reason="nothing to go back to")
    champion = released.ws.store.models.alias("demand", "champion")
    assert champion is not None and champion.version == 1
    assert released.ws.runs(kind="rollback") == []


def test_rollback_of_an_unknown_endpoint_names_it(released: Project) -> None:
    with pytest.raises(NotFoundError, match="no endpoint named 'nope'"):
        released.ws.rollback("nope", reason="typo")
