"""SQL tables and REST APIs as source plugins, wrapping their readers.

The readers (:mod:`.sql_source`, :mod:`.rest_source`) know their systems and yield batches with
the position to commit; these adapters give them the plugin shape the ingest stage drives:

    sources:
      orders:
        type: sql
        url: postgresql+psycopg://erp@db/erp    # ${ENV} references are expanded
        table: orders
        mode: incremental
        cursor: updated_at
        key: [id]
      tickets:
        type: rest
        url: https://api.example.com/tickets
        records_path: data
        pagination: {style: cursor, cursor_path: meta.next}

Reported batch labels carry the reader's origin (never a password) and the batch number; a
row's position in the quarantine is its number within that batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from gyre.ingest.sources import IncomingBatch, ModulePlugin

if TYPE_CHECKING:
    from pydantic import BaseModel

    from gyre.core.context import StageContext
    from gyre.ingest.source_batch import SourceBatch


def _incoming(batch: SourceBatch, number: int) -> IncomingBatch:
    names = batch.positions.to_pylist()
    return IncomingBatch(
        label=f"{batch.origin} batch {number}",
        table=batch.table,
        positions=None,  # rows are numbered 1.. within the batch
        malformed=None,
        state=dict(batch.state),
        position_names=_RowNames(names),
    )


class _RowNames(Mapping[int, str]):
    """Row number within the batch (1-based) -> the reader's position text, without a copy."""

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def __getitem__(self, line: int) -> str:
        if not 1 <= line <= len(self._names):
            raise KeyError(line)
        return self._names[line - 1]

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, len(self._names) + 1))

    def __len__(self) -> int:
        return len(self._names)


class ReaderSource(ModulePlugin):
    """A plugin around a reader module with ``read_batches(config, state)`` and a config class."""

    def batches(
        self,
        ctx: StageContext,
        name: str,
        type_name: str,
        options: BaseModel,
        state: Mapping[str, Any],
    ) -> Iterator[IncomingBatch]:
        read_batches = self._module().read_batches
        for number, batch in enumerate(read_batches(options, state), start=1):
            yield _incoming(batch, number)


class SqlSource(ReaderSource):
    """``type: sql``: a table or query, in full or incrementally by a cursor column."""

    module = "gyre.ingest.sql_source"
    config_class = "SqlSourceConfig"


class RestSource(ReaderSource):
    """``type: rest``: a paginated JSON API, with retries, backoff and rate limits."""

    module = "gyre.ingest.rest_source"
    config_class = "RestSourceConfig"
