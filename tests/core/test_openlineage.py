"""OpenLineage RunEvents: valid against the vendored official schema, written safely, sent."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gyre.core.errors import LineageError
from gyre.core.openlineage import (
    RUN_EVENT_SCHEMA_URL,
    DatasetRef,
    LineageEmitter,
    SchemaField,
    build_run_event,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openlineage"
SRC = Path(__file__).resolve().parents[2] / "src"
CORE_2_0_2_SHA256 = "69f68bee00b9beac88a87059c0102410e7bb05f3f43c46d02a0409831eceb0d2"
CONTENT_ID = "b3:" + "ab" * 32


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def core_schema() -> dict[str, Any]:
    return _load("OpenLineage-2-0-2.json")


@pytest.fixture(scope="module")
def registry() -> Registry:
    documents = [
        _load("OpenLineage-2-0-2.json"),
        _load("OpenLineage-1-0-2.json"),
        *(_load(f"facets/{p.name}") for p in sorted((FIXTURES / "facets").glob("*.json"))),
    ]
    return Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc, default_specification=DRAFT202012))
        for doc in documents
    )


@pytest.fixture(scope="module")
def validator(core_schema: dict[str, Any], registry: Registry) -> Draft202012Validator:
    return Draft202012Validator(
        core_schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _validate_against(url: str, instance: Any, registry: Registry) -> None:
    """Validate ``instance`` against the schema an absolute ``$id#pointer`` URL names."""
    Draft202012Validator(
        {"$ref": url}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


def _all_facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from event["run"].get("facets", {}).items()
    yield from event["job"].get("facets", {}).items()
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        yield from dataset.get("facets", {}).items()


def _inputs() -> list[DatasetRef]:
    return [
        DatasetRef(
            namespace="file:///project/.gyre/datasets",
            name="churn.features",
            fields=(SchemaField("tenure", "DOUBLE"), SchemaField("plan", "STRING")),
            version=CONTENT_ID,
        ),
        DatasetRef(namespace="postgresql://erp:5432", name="public.customers"),
    ]


def _event(kind: str, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "job_namespace": "gyre://demo",
        "job_name": "train.churn",
        "inputs": _inputs(),
        "outputs": [
            DatasetRef(
                "file:///project/.gyre/models", "churn", (SchemaField("score", "DOUBLE"),), "v3"
            )
        ],
        "event_time": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    }
    if kind == "FAIL":
        arguments["error_message"] = "TrainError: target column 'churned' is missing"
        arguments["stack_trace"] = "Traceback (most recent call last):\n  ..."
    arguments.update(overrides)
    return build_run_event(kind, **arguments)  # type: ignore[arg-type]


# -- the schema itself ---------------------------------------------------------------------------


def test_vendored_core_schema_is_pinned(core_schema: dict[str, Any]) -> None:
    raw = (FIXTURES / "OpenLineage-2-0-2.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CORE_2_0_2_SHA256
    assert core_schema["$id"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json"
    assert RUN_EVENT_SCHEMA_URL.startswith(core_schema["$id"] + "#")


# -- valid events ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["START", "COMPLETE", "FAIL"])
def test_run_events_validate_against_the_official_schema(
    kind: str, validator: Draft202012Validator, registry: Registry
) -> None:
    event = _event(kind)
    validator.validate(event)
    # the event's own schemaURL resolves to the RunEvent definition, and it validates there too
    _validate_against(event["schemaURL"], event, registry)
    facets = list(_all_facets(event))
    assert facets, "the example carries schema and version facets"
    for name, facet in facets:
        assert facet["_producer"] == "https://github.com/gyre-ml/gyre", name
        _validate_against(facet["_schemaURL"], facet, registry)


def test_event_content(registry: Registry) -> None:
    run_id = str(uuid.uuid4())
    event = _event("COMPLETE", run_id=run_id)
    assert event["eventType"] == "COMPLETE"
    assert event["eventTime"] == "2024-05-01T12:30:00.000000Z"
    assert event["run"]["runId"] == run_id
    assert event["job"] == {"namespace": "gyre://demo", "name": "train.churn", "facets": {}}
    features = event["inputs"][0]
    assert features["facets"]["version"]["datasetVersion"] == CONTENT_ID
    assert features["facets"]["schema"]["fields"] == [
        {"name": "tenure", "type": "DOUBLE"},
        {"name": "plan", "type": "STRING"},
    ]
    assert event["inputs"][1]["facets"] == {}
    assert "errorMessage" not in event["run"]["facets"]


def test_fail_event_carries_the_error_message_facet(registry: Registry) -> None:
    event = _event("FAIL")
    error = event["run"]["facets"]["errorMessage"]
    assert error["message"] == "TrainError: target column 'churned' is missing"
    assert error["programmingLanguage"] == "PYTHON"
    assert error["stackTrace"].startswith("Traceback")
    # the facet file's top-level schema describes the whole run facets object
    _validate_against(
        "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json",
        event["run"]["facets"],
        registry,
    )


def test_event_time_is_converted_to_utc_and_defaults_to_now() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = _event("START", event_time=datetime(2024, 5, 1, 14, 30, tzinfo=plus_two))
    assert event["eventTime"] == "2024-05-01T12:30:00.000000Z"
    before = datetime.now(UTC)
    stamped = datetime.fromisoformat(_event("START", event_time=None)["eventTime"])
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)


def test_custom_facets_get_a_producer_and_stay_valid(
    validator: Draft202012Validator,
) -> None:
    facet = {"_schemaURL": "https://gyre.dev/spec/facets/1-0-0/GyreRunFacet.json", "seed": 7}
    event = _event("START", run_facets={"gyre_run": facet}, job_facets={"gyre_step": facet})
    validator.validate(event)
    assert event["run"]["facets"]["gyre_run"]["_producer"] == "https://github.com/gyre-ml/gyre"
    assert event["job"]["facets"]["gyre_step"]["seed"] == 7


# -- invalid events: the check can fail ------------------------------------------------------------


def _broken(mutate: Any) -> dict[str, Any]:
    event = _event("COMPLETE")
    mutate(event)
    return event


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda e: e.pop("eventTime"), id="missing-eventTime"),
        pytest.param(lambda e: e.pop("producer"), id="missing-producer"),
        pytest.param(lambda e: e["run"].update(runId="run-42"), id="runId-not-uuid"),
        pytest.param(lambda e: e.update(eventType="DONE"), id="unknown-eventType"),
        pytest.param(lambda e: e.update(eventTime="yesterday"), id="eventTime-not-date-time"),
        pytest.param(lambda e: e["job"].pop("name"), id="job-without-name"),
        pytest.param(
            lambda e: e["inputs"][0]["facets"]["schema"].pop("_producer"),
            id="facet-without-producer",
        ),
    ],
)
def test_invalid_events_fail_validation(mutate: Any, validator: Draft202012Validator) -> None:
    with pytest.raises(ValidationError):
        validator.validate(_broken(mutate))


def test_invalid_facet_fails_its_own_schema(registry: Registry) -> None:
    event = _event("COMPLETE")
    version = event["inputs"][0]["facets"]["version"]
    del version["datasetVersion"]
    with pytest.raises(ValidationError):
        _validate_against(version["_schemaURL"], version, registry)


@pytest.mark.parametrize(
    ("overrides", "kind", "needle"),
    [
        ({"run_id": "not-a-uuid"}, "START", "not a UUID"),
        ({"event_time": datetime(2024, 1, 1)}, "START", "no time zone"),
        ({"error_message": None}, "FAIL", "no error_message"),
        ({"error_message": "x"}, "COMPLETE", "only FAIL"),
        ({"job_name": ""}, "START", "namespace and a name"),
        ({"run_facets": {"x": {"a": 1}}}, "START", "no _schemaURL"),
        ({"inputs": [DatasetRef("", "t")]}, "START", "namespace and a name"),
    ],
)
def test_bad_arguments_raise_lineage_error(
    overrides: dict[str, Any], kind: str, needle: str
) -> None:
    with pytest.raises(LineageError, match=needle):
        _event(kind, **overrides)


def test_unknown_event_type_raises() -> None:
    with pytest.raises(LineageError, match="unknown OpenLineage event type"):
        build_run_event(
            "ABORT",  # type: ignore[arg-type]
            run_id=str(uuid.uuid4()),
            job_namespace="gyre://demo",
            job_name="j",
        )


# -- the JSONL file ------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_emit_appends_one_json_line_per_event(tmp_path: Path, validator: Any) -> None:
    path = tmp_path / ".gyre" / "lineage" / "events.jsonl"
    emitter = LineageEmitter(path)
    start, complete = _event("START"), _event("COMPLETE")
    assert emitter.emit(start) is True
    assert emitter.emit(complete) is True
    assert path.read_bytes().endswith(b"\n")
    assert _lines(path) == [start, complete]
    for event in _lines(path):
        validator.validate(event)
    assert not emitter.failed_path.exists()


def test_unwritable_lineage_file_is_a_lineage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "lineage"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(LineageError, match="cannot append lineage event"):
        LineageEmitter(blocker / "events.jsonl").emit(_event("START"))


def test_non_json_facet_values_are_refused(tmp_path: Path) -> None:
    event = _event("START")
    event["run"]["facets"]["bad"] = {"_schemaURL": "https://x.y/z.json", "when": object()}
    with pytest.raises(LineageError, match="cannot be written as JSON"):
        LineageEmitter(tmp_path / "events.jsonl").emit(event)
    assert not (tmp_path / "events.jsonl").exists()


_WORKER = """
import sys, uuid
from pathlib import Path
from gyre.core.openlineage import LineageEmitter, build_run_event

path, worker, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
emitter = LineageEmitter(path)
padding = worker * 50_000  # far above PIPE_BUF, so an unlocked append could tear
for i in range(count):
    emitter.emit(build_run_event(
        "START", run_id=str(uuid.uuid4()), job_namespace="gyre://test", job_name=f"{worker}.{i}",
        run_facets={"pad": {"_schemaURL": "https://gyre.dev/spec/Pad.json", "data": padding}},
    ))
"""


def test_concurrent_processes_never_interleave_lines(
    tmp_path: Path, validator: Draft202012Validator
) -> None:
    path = tmp_path / "events.jsonl"
    workers, per_worker = "ABCD", 25
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), w, str(per_worker)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for w in workers
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()

    raw_lines = path.read_bytes().split(b"\n")
    assert raw_lines[-1] == b""
    events = [json.loads(line) for line in raw_lines[:-1]]  # a torn line would not parse
    assert len(events) == len(workers) * per_worker
    seen = {w: set() for w in workers}
    for event in events:
        worker, index = event["job"]["name"].split(".")
        assert event["run"]["facets"]["pad"]["data"] == worker * 50_000
        seen[worker].add(int(index))
    assert all(indices == set(range(per_worker)) for indices in seen.values())
    validator.validate(events[0])


# -- the HTTP transport ----------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]
    status = 201

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, type[_Collector]]]:
    handler = type("Handler", (_Collector,), {"received": [], "status": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/lineage", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_transport_delivers_every_event(
    tmp_path: Path, lineage_server: tuple[str, type[_Collector]]
) -> None:
    url, handler = lineage_server
    emitter = LineageEmitter(tmp_path / "events.jsonl", http_url=url)
    events = [_event("START"), _event("COMPLETE"), _event("FAIL")]
    assert all(emitter.emit(event) for event in events)
    assert [(p, ct) for p, ct, _ in handler.received] == [
        ("/api/v1/lineage", "application/json")
    ] * 3
    assert [json.loads(body) for _, _, body in handler.received] == events
    assert _lines(tmp_path / "events.jsonl") == events
    assert not emitter.failed_path.exists()


def test_http_error_status_is_kept_aside(
    tmp_path: Path, lineage_server: tuple[str, type[_Collector]], caplog: Any
) -> None:
    url, handler = lineage_server
    handler.status = 500
    emitter = LineageEmitter(tmp_path / "events.jsonl", http_url=url)
    event = _event("START")
    with caplog.at_level(logging.WARNING, logger="gyre.core.openlineage"):
        assert emitter.emit(event) is False
    assert len(handler.received) == 1
    [failed] = _lines(emitter.failed_path)
    assert failed["event"] == event
    assert "500" in failed["error"]
    assert "not delivered" in caplog.text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_does_not_fail_the_run(tmp_path: Path, caplog: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api/v1/lineage"
    emitter = LineageEmitter(tmp_path / "events.jsonl", http_url=url, timeout=1.0)
    start, fail = _event("START"), _event("FAIL")
    with caplog.at_level(logging.WARNING, logger="gyre.core.openlineage"):
        assert emitter.emit(start) is False
        assert emitter.emit(fail) is False
    assert emitter.failed_path == tmp_path / "events.failed.jsonl"
    failed = _lines(emitter.failed_path)
    assert [f["event"] for f in failed] == [start, fail]
    assert all(f["url"] == url and "ConnectError" in f["error"] for f in failed)
    assert _lines(tmp_path / "events.jsonl") == [start, fail]  # nothing lost locally
    assert caplog.text.count("not delivered") == 2
