"""Micro-batching and message rows, with an in-memory consumer and a hand-driven clock.

The brokers themselves are exercised in tests/integration/test_ingest_streams.py; here the
batching rules (count, time, idle, stop, a dropped connection) and the row conversion are
checked exactly, without timing on a real clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gyre.ingest.stream_kafka import describe, offsets_after
from gyre.ingest.stream_mqtt import message_digest
from gyre.ingest.stream_source import Message, StreamOptions, messages_to_rows, stream_batches


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedConsumer:
    """Delivers scripted arrivals: at each receive, the next list of payloads (or a drop)."""

    origin = "test://broker/topic"

    def __init__(self, script: list[list[bytes] | str], clock: Clock, step: float) -> None:
        self.script = list(script)
        self.clock = clock
        self.step = step
        self.count = 0
        self.dropped = False
        self.acknowledged: list[list[int]] = []

    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        self.clock.now += self.step
        if not self.script:
            return []
        arrival = self.script.pop(0)
        if arrival == "drop":
            self.dropped = True
            return []
        if len(arrival) > max_messages:  # the rest waits for the next receive, as in a broker
            self.script.insert(0, list(arrival)[max_messages:])
        got = []
        for payload in list(arrival)[:max_messages]:
            self.count += 1
            got.append(Message(payload, "topic", self.count, 0.0))
        return got

    def lost_messages_in_hand(self) -> bool:
        dropped, self.dropped = self.dropped, False
        return dropped

    def still_valid(self, message: Message) -> bool:
        return False  # every message in hand came on the dropped connection

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        return {"last": batch[-1].offset}

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        self.acknowledged.append([m.offset for m in batch])

    def close(self) -> None:
        return None


def payloads(n: int) -> list[bytes]:
    return [json.dumps({"i": i}).encode() for i in range(n)]


def run(
    script: list[list[bytes] | str], *, follow: bool = False, step: float = 0.1, **options: Any
) -> tuple[list[Any], ScriptedConsumer]:
    clock = Clock()
    consumer = ScriptedConsumer(script, clock, step)
    opts = StreamOptions(**options)
    batches = []
    for batch in stream_batches(
        consumer, opts, {}, follow=follow, stop=threading.Event(), clock=clock
    ):
        batches.append(batch)
        assert batch.acknowledge is not None
        batch.acknowledge()  # as the ingest stage does once the batch is committed
    return batches, consumer


def test_a_batch_is_cut_at_batch_messages() -> None:
    batches, consumer = run([payloads(5), payloads(5), payloads(2)], batch_messages=4)
    assert [b.rows_in for b in batches] == [4, 4, 4]
    assert consumer.acknowledged == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert [b.state for b in batches] == [{"last": 4}, {"last": 8}, {"last": 12}]


def test_a_batch_is_cut_batch_seconds_after_its_first_message() -> None:
    # One message per 0.1 s tick from t=0.1; the first batch is due at 0.45 s and closes at the
    # first check after that (t=0.5), holding the five messages that arrived by then.
    batches, _ = run([payloads(1)] * 8, batch_seconds=0.35, idle_seconds=1.0)
    assert [b.rows_in for b in batches] == [5, 3]


def test_without_follow_it_stops_after_idle_seconds_and_commits_what_it_holds() -> None:
    batches, _ = run([payloads(3)], batch_seconds=100, idle_seconds=0.5)
    assert [b.rows_in for b in batches] == [3]


def test_nothing_to_read_yields_no_batch() -> None:
    batches, _ = run([], idle_seconds=0.3)
    assert batches == []


def test_messages_in_hand_are_dropped_when_the_connection_drops() -> None:
    # Three held, the connection drops (the broker will send them again), two more arrive.
    batches, _ = run([payloads(3), "drop", payloads(2)], batch_seconds=100, idle_seconds=0.5)
    assert [b.rows_in for b in batches] == [2]


def test_follow_runs_until_stop_then_commits_the_batch_in_hand() -> None:
    clock = Clock()
    stop = threading.Event()
    consumer = ScriptedConsumer([payloads(2)] * 100, clock, 0.1)
    seen = 0
    batches = stream_batches(
        consumer,
        StreamOptions(batch_messages=5, idle_seconds=0.1),
        {},
        follow=True,
        stop=stop,
        clock=clock,
    )
    for batch in batches:
        seen += batch.rows_in
        if seen >= 10:
            stop.set()
    assert seen in (10, 11, 12)  # the stop lands after a whole batch, plus what was in hand
    assert consumer.script  # it did not run to the end of the script


def test_rows_carry_offsets_and_unreadable_messages_are_malformed_at_theirs() -> None:
    batch = [
        Message(b'{"a": 1, "b": {"c": "x"}}', "t/1", 11, 0.0),
        Message(b"not json", "t/2", 12, 0.0),
        Message(b"\xff\xfe", "t/3", 13, 0.0),
        Message(b'{"a": 2}', "t/4", 14, 0.0),
    ]
    raw = messages_to_rows(batch, StreamOptions(topic_column="topic"), "test://x")
    assert raw.table.to_pylist() == [
        {"a": "1", "b.c": "x", "topic": "t/1"},
        {"a": "2", "b.c": None, "topic": "t/4"},
    ]
    assert raw.lines.to_pylist() == [11, 14]
    assert raw.malformed["line"].to_pylist() == [12, 13]


def test_text_format_keeps_each_message_as_one_row() -> None:
    batch = [Message(b"12.5", "t", 1, 0.0), Message(b"oops", "t", 2, 0.0)]
    raw = messages_to_rows(batch, StreamOptions(format="text"), "test://x")
    assert raw.table.to_pylist() == [{"payload": "12.5"}, {"payload": "oops"}]
    assert raw.malformed.num_rows == 0


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=30))
def test_every_message_is_a_row_or_a_malformed_record_never_dropped(bodies: list[bytes]) -> None:
    batch = [Message(body, "t", 100 + i, 0.0) for i, body in enumerate(bodies)]
    raw = messages_to_rows(batch, StreamOptions(), "test://x")
    positions = raw.lines.to_pylist() + raw.malformed["line"].to_pylist()
    assert sorted(positions) == [m.offset for m in batch]


def test_kafka_offsets_advance_per_partition_past_the_batch() -> None:
    batch = [
        Message(b"", "t", 1, 0.0, handle=(0, 40)),
        Message(b"", "t", 2, 0.0, handle=(1, 7)),
        Message(b"", "t", 3, 0.0, handle=(0, 41)),
    ]
    assert offsets_after(batch, {"0": 40, "2": 5}) == {"0": 42, "1": 8, "2": 5}
    assert describe(batch) == "p0:40-41,p1:7-7"


def test_mqtt_digest_tells_topic_and_payload_apart() -> None:
    assert message_digest("a", b"1") != message_digest("b", b"1")
    assert message_digest("a", b"1") != message_digest("a", b"2")
    assert len(message_digest("a", b"1")) == 16


class _FakeKafka:
    """confluent_kafka.Consumer's surface the Kafka source uses, over two partitions."""

    ends = {0: 42, 1: 7}

    def __init__(self, settings: dict[str, Any]) -> None:
        self.assigned: list[Any] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        from types import SimpleNamespace

        partitions = {p: SimpleNamespace(id=p) for p in self.ends}
        meta = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(topics={topic: meta})

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return 0, self.ends[tp.partition]

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def close(self) -> None:
        pass


def test_kafka_latest_is_pinned_to_each_partitions_end_before_any_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from gyre.ingest.stream_kafka import KafkaConsumer, KafkaSourceConfig

    monkeypatch.setattr(confluent_kafka, "Consumer", _FakeKafka)
    latest = KafkaSourceConfig(topic="t", start="latest")
    consumer = KafkaConsumer(latest, {}, "src")
    assert consumer.pinned_start() == {"offsets": {"0": 42, "1": 7}, "messages": 0}
    fake = consumer._consumer
    assert isinstance(fake, _FakeKafka)
    assert [(tp.partition, tp.offset) for tp in fake.assigned] == [(0, 42), (1, 7)]
    # A committed position wins, and a source that starts at the beginning pins nothing.
    resumed = KafkaConsumer(latest, {"offsets": {"0": 40, "1": 7}}, "src")
    assert resumed.pinned_start() is None
    earliest = KafkaConsumer(KafkaSourceConfig(topic="t"), {}, "src")
    assert earliest.pinned_start() is None
