"""Streams as sources: messages micro-batched into dataset versions, acknowledged after commit.

A broker adapter (:mod:`.stream_mqtt`, :mod:`.stream_nats`, :mod:`.stream_redis`,
:mod:`.stream_kafka`) is a :class:`Consumer`: it receives messages, says what position to
commit after a batch of them, and acknowledges them once that position is committed. This
module turns any consumer into batches the ingest stage drives:

    sources:
      sensors:
        type: mqtt
        host: 127.0.0.1
        topics: [factory/+/temperature]
        batch_messages: 10000      # a version every 10,000 messages ...
        batch_seconds: 1.0         # ... or one second after the first message, if sooner

The order of events is what makes a crash at any moment lose and repeat nothing:

1. messages are received and held, not acknowledged;
2. the batch becomes a dataset version, and the broker position after it (a sequence number,
   an offset, an entry id, or the digests of the messages for MQTT, which has no offsets) is
   committed in the same transaction;
3. only then are the messages acknowledged. A crash before 2 leaves them unacknowledged, so
   the broker delivers them again; a crash between 2 and 3 makes the broker deliver messages
   already stored, which the consumer recognises from the committed position and acknowledges
   without storing them twice.

Without ``--follow`` a source reads what the broker holds and stops once no message has arrived
for ``idle_seconds`` (or after ``run_seconds`` on a stream that never falls silent); with it,
the stream runs until :class:`threading.Event` ``stop`` is set (``gyre ingest SOURCE --follow``
sets it on Ctrl-C or SIGTERM), and the batch in hand is committed before it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from gyre.ingest.sources import IncomingBatch, ModulePlugin

if TYPE_CHECKING:
    import pyarrow as pa

    from gyre.core.context import StageContext
    from gyre.ingest.csv_batch import RawBatch


class StreamOptions(BaseModel):
    """Keys every stream source has, besides its broker's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["json", "text"] = "json"
    """``json``: each message is one JSON object, flattened into columns like a JSON Lines file;
    ``text``: each message becomes one row with its text in column ``payload``."""
    batch_messages: int = Field(10_000, ge=1, le=5_000_000)
    """Commit a version once this many messages are held ..."""
    batch_seconds: float = Field(1.0, gt=0, le=3600)
    """... or this long after the first message of the batch arrived, whichever comes first."""
    idle_seconds: float = Field(2.0, gt=0, le=3600)
    """Without ``--follow``: stop once no message has arrived for this long ..."""
    run_seconds: float = Field(300.0, gt=0)
    """... or once the run has lasted this long, so a stream that never falls silent still
    ends a scheduled ``gyre ingest`` (the batch in hand is committed first)."""
    topic_column: str | None = None
    """Add a column with each message's topic, subject or stream name."""
    time_column: str | None = None
    """Add a column with the time each message was received (ISO 8601, UTC)."""


@dataclass(slots=True)
class Message:
    """One message as a consumer hands it over."""

    payload: bytes
    topic: str
    offset: int
    """Where the message stands in the stream: a sequence number or offset, or for brokers
    without one, the message's number among all this source has committed."""
    received: float  # time.time() when it arrived
    fields: Mapping[str, str] | None = None  # a Redis entry's fields, when they are the row
    handle: Any = None  # what the broker needs to acknowledge it


class Consumer(Protocol):
    """A connection to one broker, reading from a committed position."""

    origin: str  # for labels and messages: scheme://host:port/what, never a password

    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to ``max_messages`` new messages, waiting at most ``timeout`` seconds for one."""
        ...

    def lost_messages_in_hand(self) -> bool:
        """True once if the connection dropped since the last call: the broker will deliver
        the messages received but not acknowledged again, so those in hand must be dropped."""
        ...

    def still_valid(self, message: Message) -> bool:
        """After a drop: whether ``message`` came on the current connection (kept) or an
        earlier one (dropped; the broker delivers it again)."""
        ...

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        """The state to commit with ``batch`` (JSON), given the state committed before it."""
        ...

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        """Acknowledge ``batch`` now that ``state`` (its position) is committed."""
        ...

    def close(self) -> None: ...

    # Optional: ``pinned_start() -> dict | None``, the state to commit before the first batch
    # when a source without one starts "from now" (see :func:`_pin_start`).


class StreamSource(ModulePlugin):
    """A source plugin around a consumer factory ``module:function(options, state, source)``."""

    streaming = True

    def batches(
        self,
        ctx: StageContext,
        name: str,
        type_name: str,
        options: BaseModel,
        state: Mapping[str, Any],
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
    ) -> Iterator[IncomingBatch]:
        consumer: Consumer = self._module().open_consumer(options, state, name)
        try:
            assert isinstance(options, StreamOptions)
            pinned = getattr(consumer, "pinned_start", None)
            start = pinned() if pinned is not None and not state else None
            if start:
                state = _pin_start(ctx, name, type_name, start)
            yield from stream_batches(
                consumer, options, state, follow=follow, stop=stop or threading.Event()
            )
        finally:
            consumer.close()


def _pin_start(
    ctx: StageContext, name: str, type_name: str, start: dict[str, Any]
) -> dict[str, Any]:
    """Commit where a new source starts when its ``start`` means "from now" (Redis ``$``,
    Kafka ``latest``). Otherwise a run that ends before its first batch commits would start
    again at the stream's new end next time, and the messages that arrived in between would be
    passed over without a trace."""
    config = ctx.config.source(name).model_dump(mode="json")
    with ctx.store.transaction() as conn:
        ctx.store.datasets.save_source_state(conn, name, type_name, config, start)
    return start


def stream_batches(
    consumer: Consumer,
    options: StreamOptions,
    state: Mapping[str, Any],
    *,
    follow: bool,
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[IncomingBatch]:
    """Micro-batches of ``consumer``'s messages, each with the position to commit with it.

    The caller commits each batch and then calls its ``acknowledge``; asking for the next
    batch without having committed this one is a programming error the consumer cannot see,
    so ``state`` advances only through the batches handed out.
    """
    committed: dict[str, Any] = dict(state)
    held: list[Message] = []
    due: float | None = None  # when the held batch must be committed
    started = last_arrival = clock()
    while True:
        if stop.is_set():
            break
        wait = 0.2 if due is None else max(0.0, min(0.2, due - clock()))
        got = consumer.receive(options.batch_messages - len(held), wait)
        now = clock()
        if consumer.lost_messages_in_hand():
            # Those from the dropped connection come again; those from the new one do not.
            got = [m for m in (*held, *got) if consumer.still_valid(m)]
            held, due = [], None
        if got:
            held.extend(got)
            last_arrival = now
            if due is None:
                due = now + options.batch_seconds
        idle = now - last_arrival >= options.idle_seconds
        if held and (len(held) >= options.batch_messages or (due is not None and now >= due)):
            batch, held, due = held, [], None
            committed = yield from _hand_over(consumer, options, batch, committed)
            last_arrival = clock()  # time spent committing is not time without messages
        elif not follow and (idle or now - started >= options.run_seconds):
            break
    if held:
        yield from _hand_over(consumer, options, held, committed)


def _hand_over(
    consumer: Consumer,
    options: StreamOptions,
    batch: list[Message],
    committed: Mapping[str, Any],
) -> Generator[IncomingBatch, None, dict[str, Any]]:
    after = consumer.position_after(batch, committed)
    raw = messages_to_rows(batch, options, consumer.origin)
    first, last = batch[0].offset, batch[-1].offset
    labeller = getattr(consumer, "label", None)  # a broker with its own ids names them
    yield IncomingBatch(
        label=labeller(batch) if labeller else f"{consumer.origin} offsets {first}-{last}",
        table=raw.table,
        positions=raw.lines,
        malformed=raw.malformed if raw.malformed.num_rows else None,
        state=after,
        positions_kind="record",
        details={"messages": len(batch), "first_offset": first, "last_offset": last},
        position_names=_names(consumer, batch),
        acknowledge=lambda: consumer.acknowledge(batch, after),
    )
    return after


def _names(consumer: Consumer, batch: list[Message]) -> dict[int, str] | None:
    name = getattr(consumer, "position_name", None)  # a broker whose ids are not the offset
    return None if name is None else {m.offset: name(m) for m in batch}


def messages_to_rows(batch: list[Message], options: StreamOptions, origin: str) -> RawBatch:
    """The rows of a batch of messages, each tied to its offset; unreadable ones malformed."""
    import dataclasses

    import pyarrow as pa
    import pyarrow.compute as pc

    from gyre.ingest.csv_batch import RawBatch
    from gyre.ingest.csv_lines import MALFORMED_SCHEMA
    from gyre.ingest.formats import json_messages_batch

    # Rows are numbered by their message's index in the batch while they are built (offsets
    # may repeat across Kafka partitions), then given their offsets.
    if batch[0].fields is not None:
        raw = _field_rows(batch, origin)
    elif options.format == "json":
        raw = json_messages_batch([(i, m.payload) for i, m in enumerate(batch)], origin)
    else:
        texts = [m.payload.decode("utf-8", errors="replace") for m in batch]
        raw = RawBatch(
            file=origin,
            table=pa.table({"payload": pa.array(texts, pa.string())}),
            lines=pa.array(range(len(batch)), pa.int64()),
            malformed=MALFORMED_SCHEMA.empty_table(),
            format="text",
            positions="record",
        )
    offsets = pa.array([m.offset for m in batch], pa.int64())
    index = raw.lines
    table = _with_metadata(raw.table, [batch[i] for i in index.to_pylist()], options)
    malformed = raw.malformed.set_column(0, "line", pc.take(offsets, raw.malformed["line"]))
    return dataclasses.replace(raw, table=table, lines=pc.take(offsets, index), malformed=malformed)


def _field_rows(batch: list[Message], origin: str) -> RawBatch:
    import pyarrow as pa

    from gyre.ingest.csv_batch import RawBatch
    from gyre.ingest.csv_lines import MALFORMED_SCHEMA

    columns: dict[str, None] = {}
    for message in batch:
        columns.update(dict.fromkeys(message.fields or {}))
    table = pa.table(
        {c: pa.array([(m.fields or {}).get(c) for m in batch], pa.string()) for c in columns}
    )
    return RawBatch(
        file=origin,
        table=table,
        lines=pa.array(range(len(batch)), pa.int64()),
        malformed=MALFORMED_SCHEMA.empty_table(),
        format="fields",
        positions="record",
    )


def _with_metadata(table: pa.Table, rows: list[Message], options: StreamOptions) -> pa.Table:
    if options.topic_column is not None:
        table = _set_column(table, options.topic_column, [m.topic for m in rows])
    if options.time_column is not None:
        times = [datetime.fromtimestamp(m.received, UTC).isoformat() for m in rows]
        table = _set_column(table, options.time_column, times)
    return table


def _set_column(table: pa.Table, name: str, values: list[str]) -> pa.Table:
    import pyarrow as pa

    column = pa.array(values, pa.string())
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    if table.num_columns == 0:
        return pa.table({name: column})
    return table.append_column(name, column)
