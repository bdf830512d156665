"""Kafka topics as a source (confluent-kafka), exactly once by partition offsets.

    sources:
      payments:
        type: kafka
        bootstrap_servers: broker1:9092,broker2:9092
        topic: payments
        settings:                       # any librdkafka setting; ${ENV} references expanded
          security.protocol: SASL_SSL
          sasl.mechanism: PLAIN
          sasl.username: ${KAFKA_USER}
          sasl.password: ${KAFKA_PASSWORD}

The committed state is the next offset of each partition, stored in the same transaction as the
version; the consumer assigns the topic's partitions itself at those offsets (no group
rebalancing can move them), so a crash at any moment re-reads exactly what was not committed.
After the commit the offsets are also committed to Kafka under ``group_id`` (default
``gyre-<source>``), only so that lag shows in the usual Kafka tools. Partitions added to the
topic later are picked up at the next run. A message's offset is its number among all messages
this source has committed (partition offsets repeat across partitions); the quarantine keeps its
``p<partition>:<offset>`` beside it and the batch label names the partitions and offset ranges.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.stream_source import Message, StreamOptions, StreamSource

_LOG = logging.getLogger("gyre.ingest.kafka")
_LOG.addHandler(logging.NullHandler())  # shown only where the application configures logging


class KafkaSourceConfig(StreamOptions):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str
    group_id: str | None = None
    start: Literal["earliest", "latest"] = "earliest"
    """Where a partition with no committed offset starts: ``earliest``, or ``latest`` (its end
    when the source first runs, committed at once so that messages produced while no run is
    going are read by the next one)."""
    settings: dict[str, str] = Field(default_factory=dict)
    connect_timeout: float = Field(10.0, gt=0)


class KafkaSource(StreamSource):
    """``type: kafka``: a Kafka topic, every partition, offsets kept by Gyre."""

    module = "gyre.ingest.stream_kafka"
    config_class = "KafkaSourceConfig"


def open_consumer(options: Any, state: Mapping[str, Any], source: str) -> KafkaConsumer:
    assert isinstance(options, KafkaSourceConfig)
    return KafkaConsumer(options, state, source)


def offsets_after(batch: list[Message], committed: Mapping[str, int]) -> dict[str, int]:
    """The next offset of each partition once ``batch`` is stored.

    A message's ``handle`` is its ``(partition, partition offset)``.
    """
    after = dict(committed)
    for message in batch:
        partition, offset = message.handle
        key = str(partition)
        after[key] = max(after.get(key, 0), offset + 1)
    return after


def describe(batch: list[Message]) -> str:
    """``p0:10-19,p2:4-8``: the partitions and offset ranges of a batch."""
    ranges: dict[int, list[int]] = {}
    for message in batch:
        partition, offset = message.handle
        first_last = ranges.setdefault(partition, [offset, offset])
        first_last[0] = min(first_last[0], offset)
        first_last[1] = max(first_last[1], offset)
    return ",".join(f"p{p}:{lo}-{hi}" for p, (lo, hi) in sorted(ranges.items()))


class KafkaConsumer:
    def __init__(self, options: KafkaSourceConfig, state: Mapping[str, Any], source: str) -> None:
        try:
            import confluent_kafka
        except ImportError:
            raise ConfigError(
                "the kafka source needs confluent-kafka", hint="pip install 'gyre[kafka]'"
            ) from None
        from gyre.ingest.source_batch import expand_env

        self._options = options
        self.origin = f"kafka://{options.bootstrap_servers}/{options.topic}"
        self._offsets = {str(k): int(v) for k, v in dict(state.get("offsets", {})).items()}
        self._count = int(state.get("messages", 0))
        settings: dict[str, Any] = {
            key: expand_env(value, key=key) for key, value in options.settings.items()
        }
        settings.update(
            {
                "bootstrap.servers": options.bootstrap_servers,
                "group.id": options.group_id or f"gyre-{source}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": options.start,
                # librdkafka's own log lines go to Python logging, not raw onto stderr.
                "logger": _LOG,
            }
        )
        self._kafka = confluent_kafka
        self._consumer = confluent_kafka.Consumer(settings)
        try:
            metadata = self._consumer.list_topics(options.topic, timeout=options.connect_timeout)
        except confluent_kafka.KafkaException as exc:
            self._consumer.close()
            raise SourceError(
                f"cannot reach Kafka at {options.bootstrap_servers}: {_reason(exc)}",
                hint="check `bootstrap_servers` and `settings` in gyre.yaml",
                retryable=True,
            ) from None
        topic = metadata.topics.get(options.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            self._consumer.close()
            raise SourceError(
                f"{self.origin}: the topic does not exist or has no partitions"
                + (f" ({topic.error})" if topic is not None and topic.error else ""),
                hint="create the topic first or fix `topic` in gyre.yaml",
            )
        start = (
            confluent_kafka.OFFSET_BEGINNING
            if options.start == "earliest"
            else confluent_kafka.OFFSET_END
        )
        self._pinned = False
        if options.start == "latest":
            # "From now" as real offsets, committed before any batch (see pinned_start).
            for p in sorted(topic.partitions):
                if str(p) not in self._offsets:
                    self._offsets[str(p)] = self._end_of(p)
                    self._pinned = True
        self._consumer.assign(
            [
                confluent_kafka.TopicPartition(options.topic, p, self._offsets.get(str(p), start))
                for p in sorted(topic.partitions)
            ]
        )

    def _end_of(self, partition: int) -> int:
        """The offset the next message of ``partition`` will get (its high watermark)."""
        tp = self._kafka.TopicPartition(self._options.topic, partition)
        try:
            _, high = self._consumer.get_watermark_offsets(
                tp, timeout=self._options.connect_timeout
            )
        except self._kafka.KafkaException as exc:
            self._consumer.close()
            raise SourceError(
                f"{self.origin}: cannot read where partition {partition} ends: {_reason(exc)}",
                retryable=True,
            ) from None
        return int(high)

    def pinned_start(self) -> dict[str, Any] | None:
        """``start: latest`` resolved to each partition's end, to commit before any batch."""
        if not self._pinned:
            return None
        return {"offsets": dict(self._offsets), "messages": self._count}

    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        polled = self._consumer.consume(num_messages=min(max_messages, 100_000), timeout=timeout)
        got: list[Message] = []
        now = time.time()
        for message in polled:
            error = message.error()
            if error is not None:
                if error.code() == self._kafka.KafkaError._PARTITION_EOF:
                    continue
                raise SourceError(
                    f"{self.origin}: {error.str()}", retryable=bool(error.retriable())
                )
            self._count += 1
            got.append(
                Message(
                    payload=message.value() or b"",
                    topic=message.topic() or self._options.topic,
                    offset=self._count,
                    received=now,
                    handle=(int(message.partition() or 0), int(message.offset() or 0)),
                )
            )
        return got

    def lost_messages_in_hand(self) -> bool:
        return False  # partitions are assigned, never revoked: offsets stay valid

    def still_valid(self, message: Message) -> bool:
        return True

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        offsets = offsets_after(batch, dict(state.get("offsets", {})))
        return {"offsets": offsets, "messages": batch[-1].offset}

    def position_name(self, message: Message) -> str:
        partition, offset = message.handle
        return f"p{partition}:{offset}"

    def label(self, batch: list[Message]) -> str:
        return f"{self.origin} {describe(batch)}"

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        # Gyre's store holds the position; Kafka's copy only feeds lag dashboards.
        partitions = [
            self._kafka.TopicPartition(self._options.topic, int(p), int(offset))
            for p, offset in state["offsets"].items()
        ]
        self._consumer.commit(offsets=partitions, asynchronous=True)

    def close(self) -> None:
        self._consumer.close()


def _reason(exc: Exception) -> str:
    """A KafkaException's message without the KafkaError{code=...} wrapping."""
    error = exc.args[0] if exc.args else exc
    text = getattr(error, "str", None)
    return str(text()) if callable(text) else str(error)
