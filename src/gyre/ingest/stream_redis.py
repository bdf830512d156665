"""Redis Streams as a source, exactly once by entry id.

    sources:
      clicks:
        type: redis
        url: redis://127.0.0.1:6379/0     # ${ENV} references are expanded
        stream: clicks
        payload_field: null               # or the field holding a JSON document

Each entry's fields become the row's columns (as text); with ``payload_field`` the named field
is parsed as one JSON object instead, as a JSON Lines line would be. The committed state is the
id of the last stored entry and reading resumes after it (``XREAD``), so no consumer group and
no acknowledgement is needed: the position lives in the same transaction as the version. Several
Gyre sources may read one stream, each at its own position. A message's offset is its number
among all entries this source has committed; the batch label names its first and last entry
ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from gyre.core.errors import ConfigError, SourceError
from gyre.ingest.stream_source import Message, StreamOptions, StreamSource


class RedisSourceConfig(StreamOptions):
    url: str = "redis://127.0.0.1:6379/0"
    stream: str
    payload_field: str | None = None
    start: str = "0"
    """Where a source with no committed state starts: ``0`` (the stream's first entry) or
    ``$`` (entries added after its first run starts: that position is committed at once, so
    entries added while no run is going are read by the next one)."""
    connect_timeout: float = Field(5.0, gt=0)


class RedisSource(StreamSource):
    """``type: redis``: a Redis stream read with XREAD from the committed entry id."""

    module = "gyre.ingest.stream_redis"
    config_class = "RedisSourceConfig"


def open_consumer(options: Any, state: Mapping[str, Any], source: str) -> RedisConsumer:
    assert isinstance(options, RedisSourceConfig)
    return RedisConsumer(options, state)


class RedisConsumer:
    def __init__(self, options: RedisSourceConfig, state: Mapping[str, Any]) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "the redis source needs redis-py", hint="pip install 'gyre[streams]'"
            ) from None
        from gyre.ingest.source_batch import expand_env, url_without_password

        self._options = options
        url = expand_env(options.url, key="url")
        self.origin = f"{url_without_password(url)}/{options.stream}"
        self._client = redis.Redis.from_url(
            url,
            socket_connect_timeout=options.connect_timeout,
            socket_timeout=options.connect_timeout + 5,  # a hung server ends as an error
            decode_responses=False,
        )
        self._count = int(state.get("messages", 0))
        self._last_id = str(state.get("last_id", options.start))
        self._pinned = self._last_id == "$"
        if self._last_id == "$":
            # Pin "from now" to a real id at once, so the first batch's state is exact.
            last = self._call(lambda: self._client.xinfo_stream(options.stream)) or {}
            entry = last.get(b"last-generated-id") or last.get("last-generated-id") or b"0-0"
            self._last_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        else:
            self._call(lambda: self._client.ping())

    def pinned_start(self) -> dict[str, Any] | None:
        """``start: $`` resolved to the stream's last entry id, to commit before any batch."""
        return {"last_id": self._last_id, "messages": self._count} if self._pinned else None

    def _call(self, action: Any) -> Any:
        import redis.exceptions

        try:
            return action()
        except redis.exceptions.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise SourceError(f"{self.origin}: Redis refused the request: {exc}") from None
        except redis.exceptions.RedisError as exc:
            raise SourceError(
                f"cannot read {self.origin}: {exc}",
                hint="check `url` in gyre.yaml and that the Redis server is running",
                retryable=True,
            ) from None

    def receive(self, max_messages: int, timeout: float) -> list[Message]:
        block = max(1, int(timeout * 1000))
        stream = self._options.stream
        answer = self._call(
            lambda: self._client.xread({stream: self._last_id}, count=max_messages, block=block)
        )
        got: list[Message] = []
        now = time.time()
        for _, entries in answer or []:
            for entry_id, fields in entries:
                text_id = entry_id.decode()
                self._last_id = text_id
                self._count += 1
                decoded = {
                    k.decode("utf-8", errors="replace"): v.decode("utf-8", errors="replace")
                    for k, v in fields.items()
                }
                payload_field = self._options.payload_field
                if payload_field is not None:
                    payload = fields.get(payload_field.encode(), b"")
                    got.append(Message(payload, stream, self._count, now, handle=text_id))
                else:
                    got.append(Message(b"", stream, self._count, now, decoded, handle=text_id))
        return got

    def lost_messages_in_hand(self) -> bool:
        return False  # XREAD resumes from an id: nothing is delivered twice

    def still_valid(self, message: Message) -> bool:
        return True

    def position_after(self, batch: list[Message], state: Mapping[str, Any]) -> dict[str, Any]:
        return {"last_id": batch[-1].handle, "messages": batch[-1].offset}

    def position_name(self, message: Message) -> str:
        return str(message.handle)

    def label(self, batch: list[Message]) -> str:
        return f"{self.origin} ids {batch[0].handle}..{batch[-1].handle}"

    def acknowledge(self, batch: list[Message], state: Mapping[str, Any]) -> None:
        return None  # the committed state is the acknowledgement

    def close(self) -> None:
        self._client.close()
