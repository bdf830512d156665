"""Source plugins: where batches come from, found by name and imported when used.

A source in gyre.yaml names its plugin with ``type``. The plugin owns every key besides the
common ones (contract, quarantine_limit, dedup, pii, schema_drift, poll_seconds, description):
it validates them when the
project is loaded, so a typo is reported with its line, and it turns the source into batches.

    sources:
      rentals: {type: csv, path: data/incoming/*.csv, contract: contracts/rentals.yaml}
      orders:  {type: sql, url: "postgresql+psycopg://erp/erp", table: orders, cursor: updated_at}

Each batch carries the source's position *after* it (files seen, cursor, page); the ingest stage
commits that position in the same transaction as the dataset version the batch produced, which
is what makes a crash at any moment resume without loss or duplicates.

Third-party plugins join through the ``gyre.sources`` entry-point group (``name = module:Class``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gyre.core.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pydantic import BaseModel

    from gyre.core.context import StageContext

ENTRY_POINT_GROUP = "gyre.sources"

# name -> "module:attribute"; the module is imported only when a source of that type is used.
_BUILT_IN: dict[str, str] = {
    "csv": "gyre.ingest.file_source:FileSource",
    "tsv": "gyre.ingest.file_source:FileSource",
    "json": "gyre.ingest.file_source:FileSource",
    "jsonl": "gyre.ingest.file_source:FileSource",
    "parquet": "gyre.ingest.file_source:FileSource",
    "files": "gyre.ingest.file_source:FileSource",
    "sql": "gyre.ingest.reader_plugins:SqlSource",
    "rest": "gyre.ingest.reader_plugins:RestSource",
    "mqtt": "gyre.ingest.stream_mqtt:MqttSource",
    "nats": "gyre.ingest.stream_nats:NatsSource",
    "redis": "gyre.ingest.stream_redis:RedisSource",
    "kafka": "gyre.ingest.stream_kafka:KafkaSource",
}
_registered: dict[str, Any] = {}


@dataclass(frozen=True)
class IncomingBatch:
    """One batch as a source delivers it, before the contract."""

    label: str  # how reports and the quarantine name it: a file path, "orders rows 1-50000"
    table: pa.Table  # text columns for text formats; typed for Parquet and SQL
    positions: pa.Array | None  # int64 line or record number of each row within ``label``
    malformed: pa.Table | None  # records that could not be read at all (quarantine schema)
    state: dict[str, Any]  # the source's position after this batch
    inputs: tuple[tuple[str, str | None], ...] = ()  # lineage nodes read, with versions
    positions_kind: Literal["line", "record"] = "record"  # what ``positions`` count
    details: Mapping[str, Any] = field(default_factory=dict)  # e.g. file and raw content id
    position_names: Mapping[int, str] | None = None
    """The source's own name for the record at a position, where it has one (``orders#id=42``,
    a Redis entry id, ``p3:1207`` for Kafka); the quarantine keeps it beside the position."""
    acknowledge: Callable[[], None] | None = None
    """Called once the batch and its ``state`` are committed: a stream acknowledges its
    messages to the broker here, never before."""

    @property
    def rows_in(self) -> int:
        malformed = self.malformed.num_rows if self.malformed is not None else 0
        return int(self.table.num_rows) + int(malformed)


class SourcePlugin(Protocol):
    """What a source type provides."""

    def options_model(self, type_name: str) -> type[BaseModel]:
        """The pydantic model of this type's own keys (frozen, extra="forbid")."""
        ...

    def batches(
        self,
        ctx: StageContext,
        name: str,
        type_name: str,
        options: BaseModel,
        state: Mapping[str, Any],
    ) -> Iterator[IncomingBatch]:
        """Batches not yet ingested, given the last committed ``state``."""
        ...


class ModulePlugin:
    """Base of the built-in plugins: the work lives in ``module`` (imported only when a source
    of this type is used) and the options model is its ``config_class``."""

    module: str
    config_class: str

    def _module(self) -> Any:
        return importlib.import_module(self.module)

    def options_model(self, type_name: str) -> type[BaseModel]:
        model: type[BaseModel] = getattr(self._module(), self.config_class)
        return model


def register_source(name: str, plugin: Any) -> None:
    """Add a source type: a plugin object, or a "module:attribute" path loaded when used."""
    _registered[name] = plugin


def known_source_types() -> list[str]:
    names = set(_BUILT_IN) | set(_registered)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def get_source(name: str) -> SourcePlugin:
    target = _registered.get(name) or _BUILT_IN.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise ConfigError(
                f"unknown source type '{name}'; expected one of {', '.join(known_source_types())}"
            )
        target = found[0].value
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
    plugin: SourcePlugin = target() if isinstance(target, type) else target
    return plugin


def options_checks() -> dict[str, Any]:
    """For ``load_project``: each source type mapped to a check of its own keys.

    The check imports the plugin only when a source of that type is declared.
    """

    def check_for(type_name: str) -> Any:
        def check(options: Mapping[str, Any]) -> object:
            return get_source(type_name).options_model(type_name).model_validate(dict(options))

        return check

    return {name: check_for(name) for name in known_source_types()}


def parse_options(type_name: str, options: Mapping[str, Any]) -> BaseModel:
    return get_source(type_name).options_model(type_name).model_validate(dict(options))
