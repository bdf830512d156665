"""Streams into dataset versions against the real brokers: MQTT, NATS JetStream, Redis Streams.

Every test uses its own topic, subject, stream and client id, so runs never see each other's
messages. Kafka has no broker on the test machine: its tests run against the broker that
GYRE_KAFKA_BOOTSTRAP names, or else librdkafka's built-in mock cluster on a loopback port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from gyre.core.errors import QuarantineLimitError, SourceError
from gyre.core.settings import Settings
from gyre.workspace import Workspace
from tests.conftest import require_service

pytestmark = pytest.mark.streams

CONTRACT = """\
columns:
  - {name: sensor, type: string}
  - {name: temp, type: float, min: -50, max: 150}
  - {name: seq, type: int}
"""


def project(tmp_path: Path, store_url: str | None, source: str) -> Workspace:
    (tmp_path / "contracts").mkdir(exist_ok=True)
    (tmp_path / "contracts" / "readings.yaml").write_text(CONTRACT)
    (tmp_path / "gyre.yaml").write_text(f"project: plant\nsources:\n  readings:\n{source}")
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(tmp_path / ".gyre" / "objects"))
    return Workspace.adopt(tmp_path, settings=settings)


def reading(seq: int, temp: float = 21.5) -> bytes:
    return json.dumps({"sensor": f"s{seq % 3}", "temp": temp, "seq": seq}).encode()


def stored(ws: Workspace, name: str = "readings") -> list[dict[str, Any]]:
    return ws.read_dataset(name).to_pylist()


# ------------------------------------------------------------------------------------- MQTT


def mqtt_publish(topic: str, payloads: list[bytes]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def mqtt_topic() -> str:
    require_service("Mosquitto", "127.0.0.1", 1883)
    return f"gyre-test/{uuid.uuid4().hex}/temp"


def mqtt_source(topic: str, **extra: Any) -> str:
    options = {
        "type": "mqtt",
        "topics": [topic],
        "client_id": f"gyre-test-{uuid.uuid4().hex[:12]}",
        "contract": "contracts/readings.yaml",
        "idle_seconds": 0.5,
        "quarantine_limit": 0.5,
        **extra,
    }
    return f"    {json.dumps(options)}\n"


def test_mqtt_messages_become_versions_with_bad_ones_quarantined_by_offset(
    tmp_path: Path, workspace_store_url: str | None, mqtt_topic: str
) -> None:
    ws = project(tmp_path, workspace_store_url, mqtt_source(mqtt_topic, batch_messages=100))
    (first,) = ws.ingest("readings")  # starts the broker's session: nothing to read yet
    assert first.batches == []

    payloads = [reading(i) for i in range(1, 251)]
    payloads[9] = b'{"sensor": "s1", "temp": '  # truncated JSON: message 10
    payloads[99] = reading(100, temp=999.0)  # out of range: message 100
    payloads[199] = b"\xff\xfe not utf-8"  # message 200
    mqtt_publish(mqtt_topic, payloads)

    (report,) = ws.ingest("readings")
    assert [b.rows_in for b in report.batches] == [100, 100, 50]
    assert (report.rows_in, report.accepted, report.quarantined) == (250, 247, 3)
    assert [b.file.rsplit(" ", 1)[-1] for b in report.batches] == ["1-100", "101-200", "201-250"]
    rows = stored(ws)
    assert sorted(r["seq"] for r in rows) == [i for i in range(1, 251) if i not in (10, 100, 200)]
    quarantine = ws.quarantine_records("readings").to_pylist()
    assert sorted((q["line"], q["rule"]) for q in quarantine) == [
        (10, "columns"),
        (100, "max"),
        (200, "columns"),
    ]
    (again,) = ws.ingest("readings")  # everything was acknowledged: nothing comes back
    assert again.batches == []


def test_mqtt_batch_refused_by_the_quarantine_limit_is_delivered_again(
    tmp_path: Path, workspace_store_url: str | None, mqtt_topic: str
) -> None:
    source = mqtt_source(mqtt_topic, quarantine_limit=0.1, batch_messages=1000)
    ws = project(tmp_path, workspace_store_url, source)
    ws.ingest("readings")
    mqtt_publish(mqtt_topic, [reading(1), reading(2, temp=500.0), reading(3)])
    with pytest.raises(QuarantineLimitError):
        ws.ingest("readings")
    assert "readings" not in [record.name for record, _ in ws.datasets()]  # nothing committed
    # Nothing was acknowledged: after the limit is relaxed the broker sends all three again.
    config = tmp_path / "gyre.yaml"
    config.write_text(
        config.read_text().replace('"quarantine_limit": 0.1', '"quarantine_limit": 0.5')
    )
    ws = Workspace.adopt(tmp_path, settings=ws.settings)
    (report,) = ws.ingest("readings")
    assert (report.rows_in, report.accepted, report.quarantined) == (3, 2, 1)


def test_mqtt_redelivery_of_a_committed_batch_is_not_stored_twice(
    tmp_path: Path, workspace_store_url: str | None, mqtt_topic: str
) -> None:
    """A crash between the commit and the acknowledgement: the broker sends the batch again."""
    from gyre.ingest.run import ingest_batch
    from gyre.ingest.sources import get_source, parse_options

    source = mqtt_source(mqtt_topic, batch_messages=5, contract=None)
    ws = project(tmp_path, workspace_store_url, source)
    ws.ingest("readings")
    mqtt_publish(mqtt_topic, [reading(i) for i in range(1, 6)])
    config = ws.config.source("readings")
    plugin = get_source("mqtt")
    options = parse_options("mqtt", config.options)
    batches = plugin.batches(ws.context, "readings", "mqtt", options, {})
    batch = next(batches)
    # Commit the version and its position, but never acknowledge: as if killed right here.
    ingest_batch(
        ws.context, "readings", config, _without_ack(batch), contract=None, contract_path=None
    )
    batches.close()  # disconnects; the broker still holds the 5 messages as unacknowledged
    mqtt_publish(mqtt_topic, [reading(6)])
    (report,) = ws.ingest("readings")
    assert [b.rows_in for b in report.batches] == [1]
    assert sorted(int(r["seq"]) for r in stored(ws)) == [1, 2, 3, 4, 5, 6]


def test_mqtt_repeated_readings_are_all_stored_across_a_restart(
    tmp_path: Path, workspace_store_url: str | None, mqtt_topic: str
) -> None:
    """A sensor repeats the same payload; copies held unacknowledged when a run stops come
    back with the DUP flag and are new messages, not the committed ones, so all are kept."""
    from gyre.ingest.sources import parse_options
    from gyre.ingest.stream_mqtt import open_consumer

    same = b'{"sensor": "s1", "temp": 21.5, "seq": 7}'
    ws = project(tmp_path, workspace_store_url, mqtt_source(mqtt_topic, contract=None))
    ws.ingest("readings")
    mqtt_publish(mqtt_topic, [same] * 3)
    (first,) = ws.ingest("readings")
    assert first.rows_in == 3
    mqtt_publish(mqtt_topic, [same] * 5)
    options = parse_options("mqtt", ws.config.source("readings").options)
    state = ws.store.datasets.source_state("readings")
    consumer = open_consumer(options, state, "readings")
    held: list[Any] = []
    for _ in range(50):
        held += consumer.receive(100, 0.1)
        if len(held) == 5:
            break
    consumer.close()  # stopped with five messages in hand, none committed or acknowledged
    assert len(held) == 5
    (second,) = ws.ingest("readings")
    assert second.rows_in == 5
    assert ws.read_dataset("readings").num_rows == 8


def _without_ack(batch: Any) -> Any:
    import dataclasses

    return dataclasses.replace(batch, acknowledge=None)


# ------------------------------------------------------------------------------------- Redis


@pytest.fixture
def redis_stream() -> Any:
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis()
    key = f"gyre-test-{uuid.uuid4().hex}"
    yield client, key
    client.delete(key)
    client.close()


def test_redis_stream_entries_resume_after_the_committed_id(
    tmp_path: Path, workspace_store_url: str | None, redis_stream: Any
) -> None:
    client, key = redis_stream
    for i in range(1, 8):
        client.xadd(key, {"sensor": f"s{i}", "temp": "20.5" if i != 4 else "hot", "seq": str(i)})
    source = (
        f"    {{type: redis, stream: {key}, contract: contracts/readings.yaml,"
        " idle_seconds: 0.5, batch_messages: 3, quarantine_limit: 0.5}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (report,) = ws.ingest("readings")
    assert [b.rows_in for b in report.batches] == [3, 3, 1]
    assert (report.accepted, report.quarantined) == (6, 1)
    assert report.batches[0].file.startswith(f"redis://127.0.0.1:6379/0/{key} ids ")
    (bad,) = ws.quarantine_records("readings").to_pylist()
    assert (bad["line"], bad["column"], bad["value"]) == (4, "temp", "hot")
    assert bad["position"] == client.xrange(key)[3][0].decode()  # the entry's own id
    assert bad["quarantined_at"] is not None

    client.xadd(key, {"sensor": "s8", "temp": "19", "seq": "8"})
    (more,) = ws.ingest("readings")
    assert [b.rows_in for b in more.batches] == [1]
    assert sorted(r["seq"] for r in stored(ws)) == [1, 2, 3, 5, 6, 7, 8]


def test_redis_start_from_now_is_committed_before_the_first_batch(
    tmp_path: Path, workspace_store_url: str | None, redis_stream: Any
) -> None:
    client, key = redis_stream
    client.xadd(key, {"sensor": "old", "temp": "1", "seq": "0"})  # before the source existed
    source = (
        f"    {{type: redis, stream: {key}, contract: contracts/readings.yaml,"
        " idle_seconds: 0.3, start: $}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (quiet,) = ws.ingest("readings")  # nothing new: no batch, but "now" is pinned
    assert quiet.batches == []
    for i in (1, 2):  # arrive while no run is going
        client.xadd(key, {"sensor": "s", "temp": "20", "seq": str(i)})
    (report,) = ws.ingest("readings")
    assert [b.rows_in for b in report.batches] == [2]
    assert sorted(r["seq"] for r in stored(ws)) == [1, 2]


def test_redis_json_payload_field_and_metadata_columns(
    tmp_path: Path, workspace_store_url: str | None, redis_stream: Any
) -> None:
    client, key = redis_stream
    client.xadd(key, {"body": reading(1)})
    client.xadd(key, {"body": b"[1, 2]"})  # an array, not an object
    source = (
        f"    {{type: redis, stream: {key}, payload_field: body, idle_seconds: 0.5,"
        " topic_column: stream, time_column: received_at, quarantine_limit: 0.5}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (report,) = ws.ingest("readings")
    assert (report.accepted, report.quarantined) == (1, 1)
    (row,) = stored(ws)
    assert (row["sensor"], row["seq"], row["stream"]) == ("s1", "1", key)
    assert row["received_at"].startswith("20")
    (bad,) = ws.quarantine_records("readings").to_pylist()
    assert "array, not an object" in bad["reason"]


# -------------------------------------------------------------------------------------- NATS


def nats_run(coroutine: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coroutine)


async def _nats_setup(stream: str, subject: str, payloads: list[bytes], create: bool) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    if create:
        await js.add_stream(name=stream, subjects=[subject])
    for payload in payloads:
        await js.publish(subject, payload)
    await nc.close()


async def _nats_delete(stream: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    await nc.jetstream().delete_stream(stream)
    await nc.close()


@pytest.fixture
def nats_stream() -> Any:
    require_service("NATS", "127.0.0.1", 4222)
    name = f"GYRE_TEST_{uuid.uuid4().hex[:12].upper()}"
    subject = f"gyre.test.{name.lower()}"
    nats_run(_nats_setup(name, subject, [], create=True))
    yield name, subject
    nats_run(_nats_delete(name))


def test_nats_jetstream_exactly_once_by_sequence(
    tmp_path: Path, workspace_store_url: str | None, nats_stream: Any
) -> None:
    stream, subject = nats_stream
    nats_run(_nats_setup(stream, subject, [reading(i) for i in range(1, 26)], create=False))
    source = (
        f"    {{type: nats, stream: {stream}, subject: {subject}, batch_messages: 10,"
        " idle_seconds: 0.5, contract: contracts/readings.yaml}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (report,) = ws.ingest("readings")
    assert [b.rows_in for b in report.batches] == [10, 10, 5]
    assert report.batches[-1].file.endswith("offsets 21-25")
    nats_run(_nats_setup(stream, subject, [reading(26)], create=False))
    (more,) = ws.ingest("readings")
    assert [b.rows_in for b in more.batches] == [1]
    assert sorted(r["seq"] for r in stored(ws)) == list(range(1, 27))


def test_nats_messages_in_hand_when_a_run_stops_are_read_again_first(
    tmp_path: Path, workspace_store_url: str | None, nats_stream: Any
) -> None:
    """A run that fetched messages and stopped before committing them: the next run starts
    from the committed sequence, so newer messages cannot acknowledge the unstored ones."""
    from gyre.ingest.sources import parse_options
    from gyre.ingest.stream_nats import open_consumer

    stream, subject = nats_stream
    source = (
        f"    {{type: nats, stream: {stream}, subject: {subject}, batch_messages: 10,"
        " idle_seconds: 0.5}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    nats_run(_nats_setup(stream, subject, [reading(i) for i in range(1, 6)], create=False))
    (first,) = ws.ingest("readings")
    assert first.rows_in == 5
    nats_run(_nats_setup(stream, subject, [reading(i) for i in range(6, 11)], create=False))
    options = parse_options("nats", ws.config.source("readings").options)
    consumer = open_consumer(options, ws.store.datasets.source_state("readings"), "readings")
    held = consumer.receive(100, 1.0)
    consumer.close()  # 6-10 fetched, never committed nor acknowledged
    assert [m.offset for m in held] == [6, 7, 8, 9, 10]
    nats_run(_nats_setup(stream, subject, [reading(i) for i in range(11, 14)], create=False))
    (second,) = ws.ingest("readings")
    assert second.rows_in == 8
    assert sorted(int(r["seq"]) for r in stored(ws)) == list(range(1, 14))


def test_nats_unknown_stream_is_a_one_line_error(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    source = "    {type: nats, stream: NO_SUCH_STREAM_X, subject: no.such.subject.x}\n"
    ws = project(tmp_path, workspace_store_url, source)
    with pytest.raises(SourceError, match="no JetStream stream named NO_SUCH_STREAM_X"):
        ws.ingest("readings")


# ------------------------------------------------------------------------------------- Kafka


def test_kafka_latest_starts_where_the_topic_ended_at_the_first_run(
    tmp_path: Path, workspace_store_url: str | None, kafka_bootstrap: str
) -> None:
    from confluent_kafka import Producer

    topic = f"gyre-test-{uuid.uuid4().hex}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "logger": _KAFKA_LOG})
    for i in range(1, 6):  # before the source existed: not wanted with start: latest
        producer.produce(topic, reading(i))
    producer.flush(10)
    source = (
        f"    {{type: kafka, bootstrap_servers: '{kafka_bootstrap}', topic: {topic},"
        " start: latest, idle_seconds: 2, contract: contracts/readings.yaml}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (quiet,) = ws.ingest("readings")
    assert quiet.batches == []
    for i in range(6, 9):  # while no run is going
        producer.produce(topic, reading(i))
    producer.flush(10)
    (report,) = ws.ingest("readings")
    assert sorted(r["seq"] for r in stored(ws)) == [6, 7, 8]
    assert report.rows_in == 3


def test_kafka_unreachable_broker_is_a_one_line_error(tmp_path: Path) -> None:
    source = "    {type: kafka, bootstrap_servers: '127.0.0.1:1', topic: t, connect_timeout: 1}\n"
    ws = project(tmp_path, None, source)
    with pytest.raises(SourceError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        ws.ingest("readings")


_KAFKA_LOG = logging.getLogger("tests.kafka")


@pytest.fixture
def kafka_bootstrap() -> Any:
    """``GYRE_KAFKA_BOOTSTRAP`` when it names a broker; else librdkafka's own mock cluster: a
    real Kafka protocol server on a loopback port, living as long as the client that made it
    (``test.mock.num.brokers``), so the Kafka source is tested over the wire everywhere."""
    pytest.importorskip("confluent_kafka")
    from confluent_kafka import Producer

    named = os.environ.get("GYRE_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    holder = Producer({"test.mock.num.brokers": 1, "logger": _KAFKA_LOG})
    brokers = holder.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{b.host}:{b.port}" for b in brokers)
    holder.flush(5)


def test_kafka_topic_exactly_once_by_offsets(
    tmp_path: Path, workspace_store_url: str | None, kafka_bootstrap: str
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = kafka_bootstrap
    topic = f"gyre-test-{uuid.uuid4().hex}"
    if os.environ.get("GYRE_KAFKA_BOOTSTRAP"):  # the mock cluster creates topics on first use
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(topic, num_partitions=2)]).values():
            future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "logger": _KAFKA_LOG})
    for i in range(1, 21):
        producer.produce(topic, reading(i), partition=i % 2)
    producer.flush()
    source = (
        f"    {{type: kafka, bootstrap_servers: '{bootstrap}', topic: {topic},"
        " idle_seconds: 2, contract: contracts/readings.yaml}\n"
    )
    ws = project(tmp_path, workspace_store_url, source)
    (report,) = ws.ingest("readings")
    assert report.rows_in == 20
    producer.produce(topic, reading(21), partition=0)
    producer.flush()
    (more,) = ws.ingest("readings")
    assert more.rows_in == 1
    assert sorted(r["seq"] for r in stored(ws)) == list(range(1, 22))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{type: mqtt, port: 1, topics: [a/b]}", "cannot reach the MQTT broker at 127.0.0.1:1"),
        ("{type: redis, url: 'redis://127.0.0.1:1/0', stream: s}", "cannot read redis://"),
        ("{type: nats, url: 'nats://127.0.0.1:1', subject: a.b}", "cannot reach the NATS server"),
        (
            "{type: kafka, bootstrap_servers: '127.0.0.1:1', topic: t, connect_timeout: 1}",
            "cannot reach Kafka at 127.0.0.1:1",
        ),
    ],
    ids=["mqtt", "redis", "nats", "kafka"],
)
def test_an_unreachable_broker_is_one_line_through_the_cli(
    tmp_path: Path, source: str, expected: str
) -> None:
    import subprocess
    import sys

    (tmp_path / "gyre.yaml").write_text(f"project: plant\nsources:\n  readings: {source}\n")
    done = subprocess.run(
        [sys.executable, "-m", "gyre", "ingest", "readings", "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], done.stderr
    assert len(done.stderr.strip().splitlines()) == 2  # the error and its hint, nothing else
