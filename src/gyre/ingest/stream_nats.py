"""NATS JetStream as a source: a durable pull consumer, exactly once by stream sequence.

    sources:
      readings:
        type: nats
        url: nats://127.0.0.1:4222
        stream: READINGS              # optional: found from the subject when left out
        subject: plant.*.readings
        durable: gyre-readings        # default gyre-<source>

The committed state is the stream sequence of the last stored message, and Gyre's store, not
the server, decides where reading resumes: each run (re)creates the durable consumer to deliver
from the committed sequence + 1, in order. Messages are acknowledged only after their version is
committed (acknowledge-all: one acknowledgement covers the batch). Because acknowledging a
message acknowledges every earlier one, a gap in the consumer's delivery sequence (a pull reply
lost while the connection dropped) stops the run before anything past it is stored; the next run
starts again from the committed sequence. A message delivered again while in hand (``ack_wait``
passed during a long commit) is dropped. A message's offset is its stream sequence.

nats-py is asynchronous; this consumer runs its own event loop in the calling thread, so the
ingest stage drives it like every other source.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.source_batch import url_without_password
from gyre.ingest.stream_source import Message, StreamOptions, StreamSource


class NatsSourceConfig(StreamOptions):
    url: str = "nats://127.0.0.1:4222"
    subject: str
    stream: str | None = None
    durable: str | None = None
    ack_wait: float = Field(60.0, gt=0)
    """Seconds JetStream waits for an acknowledgement before it delivers a message again."""
    connect_timeout: float = Field(5.0, gt=0)
    user: str | None = None
    password: str | None = None
    token: str | None = None


class NatsSource(StreamSource):
    """``type: nats``: a JetStream stream through a durable pull consumer."""

    module = "gyre.ingest.stream_nats"
    config_class = "NatsSourceConfig"


def open_consumer(options: Any, state: Mapping[str, Any], source: str) -> NatsConsumer:
    assert isinstance(options, NatsSourceConfig)
    return NatsConsumer(options, state, source)


class NatsConsumer:
    def __init__(self, options: NatsSourceConfig, state: Mapping[str, Any], source: str) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the nats source needs nats-py", hint="pip install 'gyre[streams]'"
            ) from None
        self._options = options
        self.origin = f"{url_without_password(options.url)}/{options.stream or options.subject}"
        self._durable = options.durable or f"gyre-{source}"
        self._committed = int(state.get("sequence", 0))
        self._taken = self._committed  # highest sequence handed out
        self._delivered = 0  # the consumer's delivery sequence of the last message fetched
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        try:
            self._subscription = self._run(self._connect())
        except BaseException:
            self.close()
            raise

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    async def _connect(self) -> Any:
        import nats
        import nats.errors
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        from gyre.ingest.source_batch import expand_env

        options = self._options

        async def quiet(_: Exception) -> None:  # nats-py prints reconnect errors otherwise
            return None

        secret = {
            key: expand_env(value, key=key)
            for key, value in (
                ("user", options.user),
                ("password", options.password),
                ("token", options.token),
            )
            if value is not None
        }
        try:
            self._nc = await nats.connect(
                expand_env(options.url, key="url"),
                connect_timeout=options.connect_timeout,
                max_reconnect_attempts=3,
                allow_reconnect=True,
                error_cb=quiet,
                **secret,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise SourceError(
                f"cannot reach the NATS server at {url_without_password(options.url)}: "
                f"{exc or type(exc).__name__}",
                hint="check `url` in gyre.yaml and that nats-server runs with JetStream (-js)",
                retryable=True,
            ) from None
        js = self._nc.jetstream()
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self._committed + 1,
            ack_wait=options.ack_wait,
            max_ack_pending=max(4 * options.batch_messages, 10_000),
            filter_subject=options.subject,
        )
        try:
            stream = options.stream or await js.find_stream_name_by_subject(options.subject)
            # The position is Gyre's: a consumer left by an earlier run (which may have acked
            # past what it stored, or hold messages out for redelivery) starts over from it.
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(stream, self._durable)
            return await js.pull_subscribe(
                options.subject, durable=self._durable, stream=stream, config=config
            )
        except nats.js.errors.NotFoundError:
            raise SourceError(
                f"{self.origin}: no JetStream stream "
                + (f"named {options.stream}" if options.stream else "holds the subject")
                + f" {options.subject!r}",
                hint="create the stream first (nats stream add) or fix `stream`/`subject`",
            ) from None
        except nats.js.errors.APIError as exc:
            raise SourceError(
                f"{self.origin}: JetStream refused the consumer: {exc}",
                hint="check the server runs with JetStream enabled (nats-server -js)",
            ) from None
        except nats.errors.TimeoutError:
            raise SourceError(
                f"{self.origin}: JetStream did not answer",
                hint="check the server runs with JetStream enabled (nats-server -js)",
                retryable=True,
            ) from None

    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        return list(self._run(self._fetch(max_messages, timeout)))

    async def _fetch(self, max_messages: int, timeout: float) -> list[Message]:
        import nats.errors

        try:
            fetched = await self._subscription.fetch(
                batch=min(max_messages, 10_000), timeout=max(timeout, 0.01)
            )
        except nats.errors.TimeoutError:
            return []
        except nats.errors.ConnectionClosedError:
            raise SourceError(
                f"{self.origin}: the connection to the NATS server closed",
                hint="run again once the server is back; nothing uncommitted was acknowledged",
                retryable=True,
            ) from None
        got: list[Message] = []
        stale = None
        for msg in fetched:
            sequence = int(msg.metadata.sequence.stream)
            delivered = int(msg.metadata.sequence.consumer)
            if self._delivered and delivered > self._delivered + 1:
                raise SourceError(
                    f"{self.origin}: deliveries {self._delivered + 1}-{delivered - 1} never "
                    "arrived (the connection dropped); stopped before storing past them",
                    hint="run again: reading resumes from the last committed sequence",
                    retryable=True,
                )
            self._delivered = max(self._delivered, delivered)
            if sequence <= self._committed:
                stale = msg  # stored already: acknowledging the last acknowledges them all
                continue
            if sequence <= self._taken:
                continue  # delivered again while in hand (ack_wait passed)
            self._taken = sequence
            got.append(
                Message(
                    payload=msg.data,
                    topic=msg.subject,
                    offset=sequence,
                    received=time.time(),
                    handle=msg,
                )
            )
        if stale is not None:
            await stale.ack()
        return got

    def lost_messages_in_hand(self) -> bool:
        return False  # sequences tell a message delivered again; nothing need be dropped

    def still_valid(self, message: Message) -> bool:
        return True

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        return {"sequence": batch[-1].offset}

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        self._committed = int(state["sequence"])
        self._run(batch[-1].handle.ack())

    def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            self._run(self._nc.close())
        self._loop.close()
