"""Training, validating and gating model versions through the workspace."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import mean_absolute_error, r2_score

from gyre.core.errors import GateFailedError
from gyre.loop.pipeline import release
from gyre.models.packaging import load_model, read_manifest
from tests.support.bikes import MODEL_FEATURES as FEATURES

from .conftest import Project, ProjectFactory


def _between(table: pa.Table, first: dt.date, last: dt.date) -> pa.Table:
    days = table["dteday"]
    return table.filter(
        pc.and_(pc.greater_equal(days, pa.scalar(first)), pc.less_equal(days, pa.scalar(last)))
    )


def _mae(project: Project, package_id: str, rows: pa.Table) -> float:
    model = load_model(project.ws.artifacts, package_id)
    predictions = np.asarray(model.predict(rows.select(FEATURES)), dtype=np.float64)
    return float(mean_absolute_error(rows["cnt"].to_numpy(), predictions))


def test_a_trained_version_is_registered_with_metrics_package_and_split(
    released: Project,
) -> None:
    ws = released.ws
    (version,) = ws.model("demand:1")
    assert (version.model, version.version, version.flavor) == ("demand", 1, "lightgbm")
    assert set(version.metrics) >= {"mae", "rmse", "r2"}
    assert [f["name"] for f in version.signature["inputs"]] == FEATURES

    manifest = read_manifest(ws.artifacts, version.package_id)
    split = manifest.metadata["split"]
    assert split["data"] == "features@1"
    assert (split["start"], split["train_end"], split["end"]) == (
        "2011-02-01",
        "2011-03-31",
        "2011-04-30",
    )
    assert manifest.metadata["train_run"] == version.run_id
    assert ws.artifacts.exists(manifest.metadata["reference_profile"])

    # The registered metrics are the holdout's (the last 30 days: April), computed again here
    # with scikit-learn from the stored package.
    features = ws.read_dataset("features@1")
    holdout = _between(features, dt.date(2011, 4, 1), dt.date(2011, 4, 30))
    assert holdout.num_rows == 719
    model = load_model(ws.artifacts, version.package_id)
    predicted = np.asarray(model.predict(holdout.select(FEATURES)), dtype=np.float64)
    truth = holdout["cnt"].to_numpy()
    assert version.metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted))
    assert version.metrics["r2"] == pytest.approx(r2_score(truth, predicted))
    assert version.metrics["mae"] < 90  # the gate it passed

    run, edges = ws.run(version.run_id or "")
    assert (run.kind, run.job, run.status) == ("train", "demand", "completed")
    assert run.params["data"] == "features@1"
    assert run.params["hyperparameters"]["n_estimators"] == 300
    assert (run.metrics["train_rows"], run.metrics["validation_rows"]) == (649 + 708, 719)
    assert run.environment["packages"]["lightgbm"] != "unknown"
    assert edges == {"input": ["dataset:features@1"], "output": ["model:demand:1"]}


def test_the_champion_passed_its_gates_before_the_alias_moved(released: Project) -> None:
    ws = released.ws
    (version,) = ws.model("demand:1")
    assert version.aliases == ("champion",)
    (gates,) = ws.store.models.gate_results(version)
    assert gates.passed is True
    rules = {(r["metric"], r["rule"]): r for r in gates.results}
    assert rules[("mae", "max")]["threshold"] == 90
    assert rules[("mae", "max")]["value"] == pytest.approx(version.metrics["mae"])
    assert rules[("mae", "beat_champion")]["passed"] is True  # no champion yet
    assert ws.store.models.alias("demand", "champion") == version
    assert [r.kind for r in ws.runs(limit=3)] == ["deploy", "validate", "train"]


def test_promoting_a_version_that_was_never_validated_is_refused(
    new_project: ProjectFactory,
) -> None:
    project = new_project()
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    trained = ws.train("demand")

    with pytest.raises(GateFailedError, match="has not been validated") as caught:
        ws.promote(trained.version.ref, reason="skip the gates")
    assert "gyre validate demand:1" in (caught.value.hint or "")
    assert ws.store.models.alias("demand", "champion") is None
    assert ws.runs(kind="deploy") == []
    assert "alias.moved" not in [e.action for e in ws.audit_events()]


def test_failed_gates_block_promotion(new_project: ProjectFactory) -> None:
    project = new_project(
        edit=lambda text: text.replace("{metric: mae, max: 90}", "{metric: mae, max: 1}")
    )
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    outcome = release(ws.context, "demand", reason="first try")

    assert outcome.promotion is None
    assert outcome.validation.passed is False
    assert outcome.refusal is not None and "max 1" in outcome.refusal
    with pytest.raises(GateFailedError, match="failed its gates"):
        ws.promote("demand:1", reason="force it")
    assert ws.store.models.alias("demand", "champion") is None
    assert "gate.failed" in [e.action for e in ws.audit_events()]


def test_beat_champion_scores_the_champion_on_the_candidates_holdout(
    new_project: ProjectFactory,
) -> None:
    project = new_project()
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    assert project.release() == 1

    project.arrive("2011-05")
    ws.ingest("rentals")
    ws.prepare()
    candidate = ws.train("demand")
    report = ws.validate(candidate.version.ref)

    assert report.champion == "demand:1"
    assert report.champion_metrics is not None
    # The champion is judged on the candidate's holdout (the last 30 days of May), not on its
    # own April numbers.
    split = read_manifest(ws.artifacts, candidate.version.package_id).metadata["split"]
    assert (split["data"], split["train_end"], split["end"]) == (
        "features@2",
        "2011-05-01",
        "2011-05-31",
    )
    may = _between(ws.read_dataset("features@2"), dt.date(2011, 5, 2), dt.date(2011, 5, 31))
    assert candidate.validation_rows == may.num_rows
    champion = ws.model("demand:1")[0]
    champion_on_may = _mae(project, champion.package_id, may)
    assert report.champion_metrics["mae"] == pytest.approx(champion_on_may)
    assert report.champion_metrics["mae"] != pytest.approx(champion.metrics["mae"])
    assert candidate.metrics["mae"] == pytest.approx(
        _mae(project, candidate.version.package_id, may)
    )

    beat = next(r for r in report.gates.results if r.rule == "beat_champion")
    assert beat.threshold == pytest.approx(champion_on_may)
    assert beat.passed is (candidate.metrics["mae"] <= champion_on_may)
    assert report.passed is all(r.passed for r in report.gates.results)
    assert report.as_dict()["champion_metrics"]["mae"] == pytest.approx(champion_on_may)
    _, edges = ws.run(report.run_id)
    assert sorted(edges["input"]) == ["model:demand:1", "model:demand:2"]


def test_approval_required_holds_a_passing_version_until_approved(
    new_project: ProjectFactory,
) -> None:
    project = new_project(edit=lambda text: text.replace("approval: auto", "approval: required"))
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()

    outcome = release(ws.context, "demand", reason="first release")
    assert outcome.validation.passed is True
    assert outcome.promotion is None
    assert outcome.refusal is not None and "needs approval" in outcome.refusal
    with pytest.raises(GateFailedError, match=r"not yet approved"):
        ws.promote("demand:1", reason="try")

    ws.approve("demand:1", reason="looks right")
    ws.approve("demand:1", reason="holdout too short", reject=True)
    with pytest.raises(GateFailedError, match=r"needs approval before release \(rejected\)"):
        ws.promote("demand:1", reason="try again")
    assert ws.store.models.alias("demand", "champion") is None

    ws.approve("demand:1", reason="reviewed the May numbers")  # the latest decision counts
    promotion = ws.promote("demand:1", reason="approved release")
    assert (promotion.version, promotion.previous, promotion.endpoints) == (1, None, ("demand",))
    assert ws.model("demand")[0].aliases == ("champion",)

    decisions = [
        (e.action, e.data["reason"]) for e in ws.audit_events() if e.action.startswith("approval.")
    ]
    assert decisions == [
        ("approval.approved", "looks right"),
        ("approval.rejected", "holdout too short"),
        ("approval.approved", "reviewed the May numbers"),
    ]
    approvals = ws.store.models.approvals(ws.model("demand:1")[0])
    assert [a.decision for a in approvals] == ["approved", "rejected", "approved"]
    assert all(a.actor for a in approvals)
