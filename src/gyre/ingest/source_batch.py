"""What every source reader yields: one batch of rows plus the position to commit with it.

    for batch in read_batches(config, state=store.load_state("erp_orders")):
        version = write_dataset_version(batch.table)            # the caller's job
        store.commit(version, state=batch.state)                # atomically, together

A reader (:mod:`.sql_source`, :mod:`.rest_source`) is a generator of :class:`SourceBatch`.
``state`` is where the read stands *after* the batch; a reader started again with the state of
the last batch the caller committed yields exactly the rows not committed yet, so a crash
between batches neither loses nor repeats rows. Readers never store state themselves: only the
caller knows when a batch is durable.

Shared by the sources: :func:`expand_env` (secrets stay in the environment and only ``${NAME}``
references live in ``gyre.yaml``) and :func:`encode_value` / :func:`decode_value`, which keep
datetimes, decimals and other non-JSON positions exact through a JSON state, and
:func:`position_text` / :func:`position_texts`, one text for a value in row positions, and
:func:`url_without_password` for labels and messages.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import ConfigError, SourceError


@dataclass(frozen=True)
class SourceBatch:
    """One batch read from a source."""

    table: pa.Table
    positions: pa.Array
    """``string``, one per row: where the row came from, e.g. ``orders#id=42`` or
    ``page=3#item=7``, for lineage back to the raw source."""
    state: dict[str, Any]
    """JSON-serialisable position *after* this batch; commit it with the batch."""
    origin: str
    """Human description of the source for messages (no passwords)."""

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, *, key: str, env: Mapping[str, str] | None = None) -> str:
    """Replace each ``${NAME}`` in ``text`` with the environment variable ``NAME``.

    ``key`` names the setting in messages. A missing variable is a :class:`ConfigError`
    naming the variable, never the value. ``$${NAME}`` is left as a literal ``${NAME}``.
    """
    environ = os.environ if env is None else env

    def replace(match: re.Match[str]) -> str:
        start = match.start()
        if start > 0 and text[start - 1] == "$":
            return match.group(0)
        name = match.group(1)
        if name not in environ:
            raise ConfigError(
                f"environment variable {name} is not set",
                key=key,
                hint=f"export {name}=... before running, or put the value in the setting",
            )
        return environ[name]

    expanded = _ENV_REF.sub(replace, text)
    return expanded.replace("$${", "${")


_TAGS: dict[str, Any] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": lambda us: timedelta(microseconds=us),
    "decimal": Decimal,
    "uuid": uuid.UUID,
    "bytes": bytes.fromhex,
}


def encode_value(value: Any) -> Any:
    """``value`` (a cursor, key or other position) as JSON for a state.

    Values JSON has no type for are tagged (``{"datetime": "2024-05-01T10:00:00+00:00"}``)
    so :func:`decode_value` gives back the same Python value, exactly.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, time):
        return {"time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"timedelta": value // timedelta(microseconds=1)}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    raise SourceError(
        f"cannot use a {type(value).__name__} column as cursor or key",
        hint="choose a number, date, timestamp or text column",
    )


def decode_value(value: Any, origin: str) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            tag, raw = next(iter(value.items()))
            if tag in _TAGS:
                return _TAGS[tag](raw)
        raise SourceError(
            f"{origin}: the stored state has an unknown value {value!r}",
            hint="reset the source's stored state to read from the start",
        )
    return value


def position_texts(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """``column``'s values as :func:`position_text` writes them, computed by Arrow; None for
    types this fast path does not cover (integers, text, dates and timestamps it does)."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_string(kind):
        text = pc.cast(column, pa.string())
    elif pa.types.is_timestamp(kind) and kind.unit == "us":
        text = pc.strftime(column, "%Y-%m-%dT%H:%M:%S" + ("%z" if kind.tz else ""))
    elif pa.types.is_date32(kind):
        text = pc.strftime(column, "%Y-%m-%d")
    else:
        return None
    return text.fill_null("None")


def position_text(value: Any) -> str:
    """One value as it appears in a row position (``orders#updated_at=...``)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # as Arrow keeps it: in UTC
            utc = value.astimezone(UTC).replace(tzinfo=None)
            return utc.isoformat(timespec="microseconds") + "+0000"
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def url_without_password(url: str) -> str:
    """``url`` without a password, for labels and messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
