"""Serving the endpoint over real HTTP, then monitoring what it served.

A uvicorn server runs ``build_app`` in a thread; requests are Open Inference Protocol v2 bodies
built from rows of the features dataset; labels come back through ``Workspace.feedback``.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.metrics import mean_absolute_error

from gyre.monitor.inference_log import InferenceLog
from gyre.serve.endpoint import build_app
from tests.support.bikes import MODEL_FEATURES as FEATURES

from .conftest import ProjectFactory, RunningServer, serve_app, wait_for, without_beat_champion


def _infer(server: RunningServer, rows: pa.Table, path: str = "/v2/models/demand/infer") -> Any:
    inputs = server.client.get("/v2/models/demand").json()["inputs"]
    body = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [rows.num_rows],
                "datatype": spec["datatype"],
                "data": rows[spec["name"]].to_pylist(),
            }
            for spec in inputs
        ]
    }
    response = server.client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _days(table: pa.Table, *days: dt.date) -> list[pa.Table]:
    return [table.filter(pc.equal(table["dteday"], pa.scalar(day))) for day in days]


def test_served_traffic_is_logged_labelled_and_monitored(new_project: ProjectFactory) -> None:
    project = new_project()
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    project.release()
    features = ws.read_dataset("features")
    batches = _days(features, dt.date(2011, 4, 28), dt.date(2011, 4, 29), dt.date(2011, 4, 30))

    start = datetime.now(UTC)
    sent: list[tuple[str, pa.Table, list[float]]] = []
    with serve_app(build_app(ws.context, "demand", poll_interval=0.1)) as server:
        for rows in batches:
            reply = _infer(server, rows)
            assert (reply["model_name"], reply["model_version"]) == ("demand", "1")
            (output,) = reply["outputs"]
            assert output["name"] == "cnt" and output["shape"] == [rows.num_rows]
            sent.append((reply["id"], rows, output["data"]))
        assert server.client.post("/api/logs/flush").json() == {"flushed": True}
    end = datetime.now(UTC) + timedelta(microseconds=1)
    n = sum(rows.num_rows for _, rows, _ in sent)
    assert n == 3 * 24

    # The log holds exactly what was served: inputs, outputs, version, per row.
    logged = InferenceLog(ws.paths.inference_logs).query("demand", start=start, end=end)
    assert logged.num_rows == n
    assert set(logged["model_version"].to_pylist()) == {1}
    by_key = {(r["request_id"], r["row"]): r for r in logged.to_pylist()}
    for request_id, rows, outputs in sent:
        for i, (hr, out) in enumerate(zip(rows["hr"].to_pylist(), outputs, strict=True)):
            record = by_key[(request_id, i)]
            assert record["in__hr"] == hr
            assert record["output"] == pytest.approx(out)

    labelled = ws.feedback(
        "demand",
        pa.table(
            {
                "request_id": [rid for rid, rows, _ in sent for _ in range(rows.num_rows)],
                "row": [i for _, rows, _ in sent for i in range(rows.num_rows)],
                "label": [float(v) for _, rows, _ in sent for v in rows["cnt"].to_pylist()],
            }
        ),
    )
    assert labelled == n

    report = ws.monitor("demand", start=start, end=end, window="test")
    assert report.predictions == n
    assert report.model_version == "demand:1"
    assert [d["feature"] for d in report.drift] == FEATURES
    assert all(d["n_current"] == n for d in report.drift)
    assert all(isinstance(d["drifted"], bool) and d["score"] >= 0 for d in report.drift)
    assert report.drifted_features == [d["feature"] for d in report.drift if d["drifted"]]
    # The MAE, recomputed from the HTTP responses and the labels with scikit-learn.
    truth = np.concatenate([rows["cnt"].to_numpy() for _, rows, _ in sent])
    served = np.concatenate([np.asarray(out, dtype=np.float64) for _, _, out in sent])
    assert (report.metric, report.labelled) == ("mae", n)
    assert report.value == pytest.approx(mean_absolute_error(truth, served))
    assert report.baseline == pytest.approx(ws.model("demand:1")[0].metrics["mae"])
    assert report.value is not None and report.baseline is not None and report.ratio is not None
    assert report.ratio == pytest.approx(report.value / report.baseline)

    kinds = sorted(a.kind for a in report.alerts)
    expected = (["drift"] if report.drifted_features else []) + (
        ["performance"] if report.ratio > 1.3 else []
    )
    assert kinds == expected
    assert [a.id for a in ws.alerts(status="open")] == [a.id for a in report.alerts]

    run, edges = ws.run(report.run_id or "")
    assert (run.kind, run.job, run.status) == ("monitor", "demand", "completed")
    assert run.metrics["predictions"] == n
    assert run.metrics["mae"] == pytest.approx(report.value)
    assert sorted(edges["input"]) == ["endpoint:demand", "model:demand:1"]
    assert report.as_dict()["performance"]["labelled"] == n

    # A window with no traffic reports nothing and raises nothing.
    quiet = ws.monitor("demand", start=start - timedelta(days=2), end=start, window="before")
    assert (quiet.predictions, quiet.drift, quiet.value, quiet.alerts) == (0, [], None, [])


def test_a_promotion_reaches_the_running_server_without_restart(
    new_project: ProjectFactory,
) -> None:
    project = new_project(edit=without_beat_champion)
    ws = project.ws
    ws.ingest("rentals")
    ws.prepare()
    project.release("first")
    rows = ws.read_dataset("features", head=24)

    with serve_app(build_app(ws.context, "demand", poll_interval=0.1)) as server:
        assert _infer(server, rows)["model_version"] == "1"
        assert project.release("second") == 2

        def serves(version: str) -> bool:
            return bool(_infer(server, rows)["model_version"] == version)

        wait_for(lambda: serves("2"), what="the server serving version 2")
        # A pinned request still reaches the earlier version.
        pinned = _infer(server, rows, "/v2/models/demand/versions/1/infer")
        assert pinned["model_version"] == "1"
        metrics = server.client.get("/metrics").text
        assert 'gyre_served_model_version{model="demand"} 2.0' in metrics

        ws.rollback("demand", reason="back to the first")
        wait_for(lambda: serves("1"), what="the server serving version 1 after rollback")
        server.client.post("/api/logs/flush")

    logged = InferenceLog(ws.paths.inference_logs).query("demand")
    versions = logged["model_version"].to_pylist()
    assert versions[0] == 1 and 2 in versions and versions[-1] == 1
