"""The OIP v2 data plane through real HTTP: every route, errors, metrics and the hot swap."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gyre.models import load_model
from gyre.serve.app import InferenceEvent, ModelRef

from .conftest import Packages, StartServer, Target

Wait = Callable[..., None]

ROWS = {"a": [0.5, -1.0, 2.0], "b": [0.1, 0.9, 0.5], "colour": ["red", "green", "blue"]}


def _inputs(rows: dict[str, list[Any]] = ROWS) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [len(values)],
            "datatype": "BYTES" if any(isinstance(v, str) for v in values) else "FP64",
            "data": values,
        }
        for name, values in rows.items()
    ]


def _expected(packages: Packages, package_id: str, rows: dict[str, list[Any]] = ROWS) -> list[Any]:
    model = load_model(packages.store, package_id)
    return model.predict({k: np.asarray(v) for k, v in rows.items()}).tolist()


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
def v1(packages: Packages) -> Target:
    return Target(ModelRef("bike-model", 1, packages.v1))


def test_health_readiness_and_server_metadata(
    start_server: StartServer, v1: Target, wait_for: Wait
) -> None:
    target = Target(None)
    srv = start_server(target)
    c = srv.client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").status_code == 503
    assert c.get("/v2/models/bikes/ready").status_code == 503
    not_ready = c.post("/v2/models/bikes/infer", json={"inputs": _inputs()})
    assert not_ready.status_code == 503
    assert "not loaded yet" in not_ready.json()["error"]
    meta = c.get("/v2").json()
    assert meta["name"] == "gyre"
    assert "binary_tensor_data" in meta["extensions"]
    assert meta["version"]

    target.ref = v1.ref
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    assert c.get("/v2/health/ready").json() == {"ready": True}
    assert c.get("/v2/models/bikes/ready").json() == {"name": "bikes", "ready": True}
    assert c.get("/v2/models/bikes/versions/1/ready").status_code == 200
    assert c.get("/v2/models/other/ready").status_code == 404


def test_model_metadata(start_server: StartServer, v1: Target, wait_for: Wait) -> None:
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    meta = c.get("/v2/models/bikes").json()
    assert meta == {
        "name": "bikes",
        "versions": ["1"],
        "platform": "lightgbm",
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "FP64", "shape": [-1]},
            {"name": "colour", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}],
    }
    assert c.get("/v2/models/bikes/versions/1").json() == meta
    missing = c.get("/v2/models/cars")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "model 'cars' is not served here; this server serves 'bikes'"
    }
    no_version = c.get("/v2/models/bikes/versions/7")
    assert no_version.status_code == 404
    assert (
        "version '7' of model 'bikes' is not available; available: 1" in no_version.json()["error"]
    )
    assert c.get("/nowhere").json() == {"error": "Not Found"}


def test_infer_per_feature_tensors(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    srv = start_server(v1)
    c = srv.client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    r = c.post("/v2/models/bikes/infer", json={"id": "req-1", "inputs": _inputs()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-request-id"] == "req-1"
    assert body["id"] == "req-1"
    assert (body["model_name"], body["model_version"]) == ("bikes", "1")
    [out] = body["outputs"]
    assert (out["name"], out["shape"], out["datatype"]) == ("y", [3], "FP64")
    assert out["data"] == _expected(packages, packages.v1)

    # No id: the server makes a uuid4 and returns it in the body and the header.
    column_shaped = [dict(t, shape=[3, 1], data=[[v] for v in t["data"]]) for t in _inputs()]
    r2 = c.post("/v2/models/bikes/versions/1/infer", json={"inputs": column_shaped})
    assert r2.status_code == 200, r2.text
    assert uuid.UUID(r2.json()["id"]).version == 4
    assert r2.headers["x-request-id"] == r2.json()["id"]
    assert r2.json()["outputs"][0]["data"] == out["data"]

    # JSON null is a missing value; the model still answers.
    gap = _inputs({"a": [None, 1.0], "b": [0.2, None], "colour": [None, "red"]})
    r3 = c.post("/v2/models/bikes/infer", json={"inputs": gap})
    assert r3.status_code == 200, r3.text
    assert all(isinstance(v, float) for v in r3.json()["outputs"][0]["data"])


def test_inference_events_reach_the_monitor_hook(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    srv = start_server(v1)
    c = srv.client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    r = c.post("/v2/models/bikes/infer", json={"id": "evt", "inputs": _inputs()})
    assert r.status_code == 200
    wait_for(lambda: len(srv.events) == 1)
    event: InferenceEvent = srv.events[0]
    assert (event.request_id, event.endpoint, event.model_name, event.model_version) == (
        "evt",
        "bikes",
        "bike-model",
        1,
    )
    assert event.time.tzinfo is UTC
    assert event.latency_ms > 0
    assert sorted(event.inputs) == ["a", "b", "colour"]
    np.testing.assert_array_equal(event.inputs["a"], ROWS["a"])
    assert event.inputs["colour"].tolist() == ROWS["colour"]
    assert event.outputs.tolist() == r.json()["outputs"][0]["data"]
    c.post(
        "/v2/models/bikes/infer",
        json={"inputs": [{"name": "zzz", "shape": [1], "datatype": "FP64", "data": [1]}]},
    )
    c.post("/v2/models/bikes/infer", json={"id": "evt2", "inputs": _inputs()})
    wait_for(lambda: len(srv.events) == 2)
    assert srv.events[1].request_id == "evt2"  # failed requests are not logged as inferences


def test_a_failing_monitor_hook_does_not_fail_requests(
    start_server: StartServer, v1: Target, wait_for: Wait
) -> None:
    def broken(event: InferenceEvent) -> None:
        raise RuntimeError("log disk full")

    c = start_server(v1, on_inference=broken).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    assert c.post("/v2/models/bikes/infer", json={"inputs": _inputs()}).status_code == 200
    wait_for(
        lambda: _counter(c.get("/metrics").text, "gyre_inference_callback_errors_total") == 1.0
    )


def test_single_matrix_input(start_server: StartServer, packages: Packages, wait_for: Wait) -> None:
    c = start_server(Target(ModelRef("numeric", 3, packages.numeric))).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    matrix = {
        "name": "input-0",
        "shape": [3, 2],
        "datatype": "FP32",
        "data": [[0.5, 0.1], [-1, 0.9], [2, 0.5]],
    }
    r = c.post("/v2/models/bikes/infer", json={"inputs": [matrix]})
    assert r.status_code == 200, r.text
    expected = _expected(packages, packages.numeric, {"a": [0.5, -1.0, 2.0], "b": [0.1, 0.9, 0.5]})
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, rtol=1e-6)
    flat = dict(matrix, data=[0.5, 0.1, -1, 0.9, 2, 0.5])  # row-major flat data, same tensor
    assert (
        c.post("/v2/models/bikes/infer", json={"inputs": [flat]}).json()["outputs"]
        == r.json()["outputs"]
    )
    wrong = dict(matrix, shape=[2, 3])
    bad = c.post("/v2/models/bikes/infer", json={"inputs": [wrong]})
    assert bad.status_code == 400
    assert "single [n, 2] tensor" in bad.json()["error"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [*_inputs(), {"name": "d", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}],
            "unknown input 'd'; the model's inputs are a, b, colour",
        ),
        (_inputs()[:2], "missing input(s) colour"),
        (
            [dict(_inputs()[0], shape=[4]), *_inputs()[1:]],
            "input 'a' has 3 values but its shape [4] needs 4",
        ),
        ([dict(_inputs()[0], shape=[1, 3]), *_inputs()[1:]], "input 'a' has shape [1, 3]"),
        (
            [dict(_inputs()[0], datatype="BYTES", data=["x", "y", "z"]), *_inputs()[1:]],
            "input 'a' has datatype BYTES; the model expects FP64",
        ),
        (
            [*_inputs()[:2], dict(_inputs()[2], datatype="INT64", data=[1, 2, 3])],
            "input 'colour' has datatype INT64; the model expects BYTES",
        ),
        (
            [dict(_inputs()[0], data=["1", "2", "3"]), *_inputs()[1:]],
            "input 'a' is declared FP64 but its data holds values like ['1', '2', '3']",
        ),
        ([dict(_inputs()[0], data=[True, False, True]), *_inputs()[1:]], "declared FP64"),
        (
            [dict(_inputs()[0], datatype="INT64", data=[1.5, 2, 3]), *_inputs()[1:]],
            "declared INT64",
        ),
        ([dict(_inputs()[0], datatype="FLOAT"), *_inputs()[1:]], "unknown datatype 'FLOAT'"),
        (
            [dict(_inputs()[0], shape=[2], data=[1, 2]), *_inputs()[1:]],
            "inputs have different lengths: a=2, b=3, colour=3",
        ),
        ([_inputs()[0], *_inputs()], "input 'a' is given twice"),
        ([dict(_inputs()[0], data=[[1, 2], [3]]), *_inputs()[1:]], "ragged"),
        ([], "inputs"),
    ],
)
def test_bad_requests_are_400_with_an_error_body(
    start_server: StartServer,
    v1: Target,
    wait_for: Wait,
    inputs: list[dict[str, Any]],
    message: str,
) -> None:
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    r = c.post("/v2/models/bikes/infer", json={"inputs": inputs})
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"}
    assert message in r.json()["error"]
    assert uuid.UUID(r.headers["x-request-id"])


def test_other_request_errors(start_server: StartServer, v1: Target, wait_for: Wait) -> None:
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    garbage = c.post(
        "/v2/models/bikes/infer", content=b"{not json", headers={"x-request-id": "mine"}
    )
    assert garbage.status_code == 400
    assert "not valid JSON" in garbage.json()["error"]
    assert garbage.headers["x-request-id"] == "mine"
    unknown_out = c.post(
        "/v2/models/bikes/infer", json={"inputs": _inputs(), "outputs": [{"name": "z"}]}
    )
    assert unknown_out.status_code == 400
    assert unknown_out.json()["error"] == "unknown output 'z'; the model's output is 'y'"
    assert c.post("/v2/models/cars/infer", json={"inputs": _inputs()}).status_code == 404
    assert (
        c.post("/v2/models/bikes/versions/9/infer", json={"inputs": _inputs()}).status_code == 404
    )
    assert (
        c.post("/v2/models/bikes/versions/x/infer", json={"inputs": _inputs()}).status_code == 404
    )


def test_metrics_count_requests_by_model_version_and_status(
    start_server: StartServer, v1: Target, wait_for: Wait
) -> None:
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    before = c.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    ok = {"model": "bikes", "version": "1", "status": "200"}
    assert _counter(before.text, "gyre_inference_requests_total", **ok) == 0
    for _ in range(3):
        c.post("/v2/models/bikes/infer", json={"inputs": _inputs()})
    c.post("/v2/models/bikes/infer", json={"inputs": _inputs()[:1]})
    text = c.get("/metrics").text
    assert _counter(text, "gyre_inference_requests_total", **ok) == 3
    assert _counter(text, "gyre_inference_requests_total", status="400") == 1
    assert (
        _counter(text, "gyre_inference_request_duration_seconds_count", model="bikes", version="1")
        == 3
    )
    assert _counter(text, "gyre_inference_rows_total", model="bikes") == 9
    assert _counter(text, "gyre_served_model_version", model="bikes") == 1


def test_hot_swap_serves_the_new_champion_without_restart(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    srv = start_server(v1)
    c = srv.client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)

    def infer(path: str = "/v2/models/bikes/infer") -> dict[str, Any]:
        r = c.post(path, json={"inputs": _inputs()})
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    assert infer()["model_version"] == "1"
    v1.ref = ModelRef("bike-model", 2, packages.v2)
    wait_for(lambda: infer()["model_version"] == "2")
    assert infer()["outputs"][0]["data"] == _expected(packages, packages.v2)
    assert _expected(packages, packages.v2) != _expected(packages, packages.v1)
    assert c.get("/v2/models/bikes").json()["versions"] == ["1", "2"]
    # The previous version stays addressable from the cache, without loading it again.
    old = infer("/v2/models/bikes/versions/1/infer")
    assert (old["model_version"], old["outputs"][0]["data"]) == (
        "1",
        _expected(packages, packages.v1),
    )
    assert [ref.version for ref in srv.app.state.loads] == [1, 2]
    text = c.get("/metrics").text
    assert _counter(text, "gyre_served_model_version", model="bikes") == 2
    assert _counter(text, "gyre_inference_requests_total", version="2", status="200") >= 1


def test_resolve_failures_keep_the_current_model(
    start_server: StartServer, v1: Target, wait_for: Wait
) -> None:
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    v1.fail = "registry unreachable"
    wait_for(lambda: _counter(c.get("/metrics").text, "gyre_model_load_errors_total") >= 2)
    assert c.post("/v2/models/bikes/infer", json={"inputs": _inputs()}).status_code == 200
    assert c.get("/v2/health/ready").status_code == 200


def test_explicit_versions_load_on_demand(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    refs = {
        5: ModelRef("bike-model", 5, packages.v2),
        6: ModelRef("bike-model", 6, packages.classifier),
    }
    srv = start_server(v1, resolve_version=refs.get, cache_size=1)
    c = srv.client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    r = c.post("/v2/models/bikes/versions/5/infer", json={"inputs": _inputs()})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "5"
    assert r.json()["outputs"][0]["data"] == _expected(packages, packages.v2)
    assert c.get("/v2/models/bikes/infer").status_code == 405
    # A classifier answers with its labels, as BYTES.
    r6 = c.post("/v2/models/bikes/versions/6/infer", json={"inputs": _inputs()})
    assert r6.status_code == 200, r6.text
    out = r6.json()["outputs"][0]
    assert out["datatype"] == "BYTES"
    assert out["data"] == _expected(packages, packages.classifier)
    assert set(out["data"]) <= {"hi", "lo"}
    assert c.get("/v2/models/bikes").json()["versions"] == ["1", "6"]  # cache of one
    assert c.get("/v2/models/bikes/versions/8").status_code == 404


def test_tritonclient_style_json_request(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    """The body tritonclient.http sends with binary_data=False on inputs and outputs."""
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    body = {
        "id": "triton-1",
        "inputs": [
            {
                "name": "a",
                "shape": [3, 1],
                "datatype": "FP32",
                "parameters": {"binary_data": False},
                "data": [0.5, -1.0, 2.0],
            },
            {
                "name": "b",
                "shape": [3, 1],
                "datatype": "FP32",
                "parameters": {"binary_data": False},
                "data": [0.1, 0.9, 0.5],
            },
            {
                "name": "colour",
                "shape": [3, 1],
                "datatype": "BYTES",
                "parameters": {"binary_data": False},
                "data": ["red", "green", "blue"],
            },
        ],
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
    }
    r = c.post(
        "/v2/models/bikes/versions/1/infer",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    data = r.json()["outputs"][0]["data"]
    expected = _expected(
        packages,
        packages.v1,
        {"a": [0.5, -1.0, 2.0], "b": [0.1, 0.9, 0.5], "colour": ["red", "green", "blue"]},
    )
    np.testing.assert_allclose(data, expected, rtol=1e-5)


def _bytes_tensor(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_binary_tensor_data_extension(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    """tritonclient's default: raw little-endian inputs after the JSON, binary outputs back."""
    c = start_server(v1).client
    wait_for(lambda: c.get("/v2/health/ready").status_code == 200)
    a = np.array([0.5, -1.0, 2.0], dtype="<f4").tobytes()
    b = np.array([0.1, 0.9, 0.5], dtype="<f8").tobytes()
    colour = _bytes_tensor(["red", "green", "blue"])
    header = {
        "inputs": [
            {
                "name": "a",
                "shape": [3],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(a)},
            },
            {
                "name": "b",
                "shape": [3],
                "datatype": "FP64",
                "parameters": {"binary_data_size": len(b)},
            },
            {
                "name": "colour",
                "shape": [3],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(colour)},
            },
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    r = c.post(
        "/v2/models/bikes/infer",
        content=head + a + b + colour,
        headers={
            "Inference-Header-Content-Length": str(len(head)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    doc = json.loads(r.content[:n])
    [out] = doc["outputs"]
    assert out["parameters"] == {"binary_data_size": 24}
    assert "data" not in out
    values = np.frombuffer(r.content[n:], dtype="<f8")
    expected = _expected(
        packages,
        packages.v1,
        {"a": [0.5, -1.0, 2.0], "b": [0.1, 0.9, 0.5], "colour": ["red", "green", "blue"]},
    )
    np.testing.assert_allclose(values, expected, rtol=1e-6)

    # An output's own binary_data: false overrides the request-wide default.
    header["outputs"] = [{"name": "y", "parameters": {"binary_data": False}}]
    head = json.dumps(header).encode()
    r2 = c.post(
        "/v2/models/bikes/infer",
        content=head + a + b + colour,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    np.testing.assert_allclose(r2.json()["outputs"][0]["data"], expected, rtol=1e-6)

    short = c.post(
        "/v2/models/bikes/infer",
        content=head + a,
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    assert short.status_code == 400
    assert "binary_data_size" in short.json()["error"]
    bad_len = c.post(
        "/v2/models/bikes/infer", content=head, headers={"Inference-Header-Content-Length": "x"}
    )
    assert bad_len.status_code == 400


def test_apps_have_private_metric_registries(
    start_server: StartServer, v1: Target, wait_for: Wait
) -> None:
    one = start_server(v1).client
    two = start_server(Target(v1.ref)).client
    wait_for(lambda: one.get("/v2/health/ready").status_code == 200)
    wait_for(lambda: two.get("/v2/health/ready").status_code == 200)
    one.post("/v2/models/bikes/infer", json={"inputs": _inputs()})
    assert _counter(one.get("/metrics").text, "gyre_inference_requests_total") == 1
    assert _counter(two.get("/metrics").text, "gyre_inference_requests_total") == 0


def test_concurrent_requests_during_swaps_never_fail(
    start_server: StartServer, packages: Packages, v1: Target, wait_for: Wait
) -> None:
    import concurrent.futures

    srv = start_server(v1)
    wait_for(lambda: srv.client.get("/v2/health/ready").status_code == 200)
    refs = [ModelRef("bike-model", 1, packages.v1), ModelRef("bike-model", 2, packages.v2)]
    answers = {"1": _expected(packages, packages.v1), "2": _expected(packages, packages.v2)}

    def call(i: int) -> tuple[int, str, list[float]]:
        v1.ref = refs[i % 2] if i % 10 == 0 else v1.ref
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            r = client.post("/v2/models/bikes/infer", json={"inputs": _inputs()})
        body = r.json()
        return (
            r.status_code,
            body.get("model_version", ""),
            body.get("outputs", [{}])[0].get("data", []),
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(60)))
    for status, version, data in results:
        assert status == 200
        assert data == answers[version]  # every answer comes wholly from one version
