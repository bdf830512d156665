"""The ingest stage's schema step: hold each batch to what its source knows, version contracts,
and bring stored rows along when the schema evolves.

    held = hold_batch(ctx, "rentals", config, raw, contract, base)   # before anything is stored
    accepted, stored = conform_to_stored(ctx, base, accepted, stored)  # after dedup and PII
    ...
    # inside the transaction that registers the dataset version:
    held.commit(ctx.store, conn, run_id=run.id, dataset_version=version)

**The known schema** is the source's effective contract (its file plus what schema drift
evolved, :mod:`.contract_versions`) or, without a contract, the schema of its dataset's latest
version. :mod:`.drift` compares the batch with it under the source's ``schema_drift`` policy.

**Contract versions.** The effective contract that checked a batch is registered when it
differs from the source's latest version: ``file`` when the contract file changed, ``evolved``
when this batch made a column or type evolve. Versions and drift events are written in the
transaction that registers the dataset version, so a refused or crashed batch leaves neither.

**Stored rows.** A dataset version's parts share one schema. When a column joins or a type
widens, the rows stored so far are rewritten once into the wider schema (new columns null,
values cast), in the same version; later batches append as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gyre.core.errors import DataError
from gyre.ingest.drift import DriftEvent, Known, SchemaDriftError, hold_to_contract, hold_to_stored

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy import Connection

    from gyre.core.config import SchemaDriftConfig, SourceConfig
    from gyre.core.context import StageContext
    from gyre.core.store import MetadataStore
    from gyre.datasets.catalog import DatasetVersion
    from gyre.ingest.contract import Contract
    from gyre.ingest.contract_versions import EvolvedColumn
    from gyre.ingest.csv_batch import BatchResult, RawBatch


@dataclass(frozen=True)
class PendingContract:
    """A contract version to register with the batch it checked."""

    version: int
    content_id: str
    origin: str  # file | evolved
    file: str | None
    file_content_id: str
    evolved: tuple[EvolvedColumn, ...]
    columns: list[dict[str, Any]]


@dataclass(frozen=True)
class HeldSchema:
    """A batch held to its source's schema policy and contract, ready to commit."""

    source: str
    batch: str
    result: BatchResult
    events: tuple[DriftEvent, ...] = ()
    contract_version: int | None = None
    pending: tuple[PendingContract, ...] = field(default_factory=tuple)

    @property
    def stats(self) -> dict[str, Any]:
        """What the dataset version's stats record about the schema step."""
        return {} if self.contract_version is None else {"contract_version": self.contract_version}

    def event_dicts(self) -> list[dict[str, Any]]:
        return [event.as_dict() for event in self.events]

    def commit(
        self, store: MetadataStore, conn: Connection, *, run_id: str, dataset_version: int
    ) -> None:
        """Register the pending contract versions and the drift events in ``conn``'s transaction."""
        for pending in self.pending:
            store.schemas.add_contract_version(
                conn,
                source=self.source,
                version=pending.version,
                content_id=pending.content_id,
                origin=pending.origin,
                file=pending.file,
                file_content_id=pending.file_content_id,
                evolved=[e.as_dict() for e in pending.evolved],
                columns=pending.columns,
                run_id=run_id,
            )
        store.schemas.add_drift_events(
            conn,
            self.source,
            [
                {
                    **event.as_dict(),
                    "run_id": run_id,
                    "dataset_version": dataset_version,
                    "contract_version": self.contract_version,
                    "batch": self.batch,
                }
                for event in self.events
            ],
        )


def effective_policy(config: SourceConfig, contract: Contract | None) -> SchemaDriftConfig:
    """The source's ``schema_drift``; a contract that sets ``extra_columns`` decides
    ``columns`` unless gyre.yaml does (``error`` is ``freeze``, ``drop`` is ``discard_value``)."""
    policy = config.schema_drift
    said = "schema_drift" in config.model_fields_set and "columns" in policy.model_fields_set
    if contract is None or said or "extra_columns" not in contract.model_fields_set:
        return policy
    mode = "freeze" if contract.extra_columns == "error" else "discard_value"
    return policy.model_copy(update={"columns": mode})


def hold_batch(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    raw: RawBatch,
    contract: Contract | None,
    base: DatasetVersion | None,
) -> HeldSchema:
    """Hold ``raw`` to source ``name``'s known schema and contract (see the module doc).

    Raises :class:`~gyre.ingest.drift.SchemaDriftError` when a ``freeze`` policy refuses the
    batch, and :class:`~gyre.core.errors.QuarantineLimitError` past the quarantine limit.
    """
    policy = effective_policy(config, contract)
    events = table_events(name, raw.file, policy, base)
    limit = config.quarantine_limit
    if contract is None:
        stored = base.manifest.schema if base is not None else None
        held = hold_to_stored(raw, stored, policy, limit, Known(name))
        return HeldSchema(name, raw.file, held.result, (*events, *held.events))
    return _hold_to_contract(ctx, name, config, raw, contract, policy, events)


def table_events(
    name: str, label: str, policy: SchemaDriftConfig, base: DatasetVersion | None
) -> list[DriftEvent]:
    """The ``tables`` entity: a batch that creates the dataset (refused under ``freeze``)."""
    events: list[DriftEvent] = []
    if base is None:
        if policy.tables == "freeze":
            raise SchemaDriftError(
                f"{label}: source '{name}' has no dataset yet and its schema_drift.tables is "
                "freeze, so it may not create one; the batch was refused and nothing was "
                "committed",
                hint=f"is '{name}' the name the dataset was created under (`gyre datasets "
                "list`)? To create it, ingest once with `schema_drift: {tables: evolve}`",
            )
        events.append(
            DriftEvent(
                "tables",
                "new_table",
                None,
                None,
                None,
                policy.tables,
                "created_dataset",
                0,
                f"the batch creates dataset '{name}'",
            )
        )
    return events


class ContractVersions:
    """The source's effective contract, and the versions a batch checked by it must register.

    Blobs go in as soon as a version is noted: if the batch fails they are unreferenced, never
    wrong. The versions themselves are registered by :meth:`HeldSchema.commit`.
    """

    def __init__(
        self, ctx: StageContext, name: str, config: SourceConfig, contract: Contract
    ) -> None:
        from gyre.core.artifacts import content_id
        from gyre.ingest.contract_versions import EvolvedColumn, apply_evolved, canonical_yaml

        self.ctx = ctx
        self.name = name
        self.config = config
        self.latest = ctx.store.schemas.latest_contract(name)
        before = [EvolvedColumn.from_dict(e) for e in self.latest.evolved] if self.latest else []
        self.effective, self.kept = apply_evolved(contract, before)
        self.file_bytes = canonical_yaml(contract)
        self.file_id = content_id(self.file_bytes)
        self.number = self.latest.version if self.latest is not None else 0
        self.pending: list[PendingContract] = []

    def held(self, batch: str, result: BatchResult, events: tuple[DriftEvent, ...]) -> HeldSchema:
        """The outcome of holding ``batch`` to these versions, ready to commit with it."""
        return HeldSchema(
            self.name, batch, result, events, self.number or None, tuple(self.pending)
        )

    def register(self, version: Contract, origin: str, evolved: tuple[EvolvedColumn, ...]) -> None:
        """Note ``version`` unless it is the latest already."""
        from gyre.core.artifacts import content_id
        from gyre.ingest.contract_versions import canonical_yaml, column_summaries

        data = canonical_yaml(version)
        cid = content_id(data)
        if self.pending:
            last: str | None = self.pending[-1].content_id
        else:
            last = self.latest.content_id if self.latest else None
        if cid == last:
            return
        self.ctx.artifacts.put_bytes(data)
        self.ctx.artifacts.put_bytes(self.file_bytes)
        self.number += 1
        self.pending.append(
            PendingContract(
                self.number,
                cid,
                origin,
                self.config.contract,
                self.file_id,
                evolved,
                column_summaries(version),
            )
        )


def _hold_to_contract(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    raw: RawBatch,
    contract: Contract,
    policy: SchemaDriftConfig,
    events: list[DriftEvent],
) -> HeldSchema:
    versions = ContractVersions(ctx, name, config, contract)
    held = hold_to_contract(
        raw, versions.effective, policy, config.quarantine_limit, Known(name, config.contract)
    )
    versions.register(versions.effective, "file", versions.kept)
    if held.evolved:
        from gyre.ingest.contract_versions import apply_evolved, merge_evolved

        final, final_kept = apply_evolved(contract, merge_evolved(versions.kept, held.evolved))
        versions.register(final, "evolved", final_kept)
    return versions.held(raw.file, held.result, (*events, *held.events))


def conform_to_stored(
    ctx: StageContext,
    base: DatasetVersion | None,
    accepted: pa.Table,
    stored: pa.Table | None,
) -> tuple[pa.Table, pa.Table | None]:
    """The accepted rows, and the stored rows when they must be rewritten, in one schema.

    ``stored`` is the rows a dedup ``keep: last`` already took out of ``base`` (None: all of
    ``base`` stays as it is). Returns ``(accepted, stored)``; ``stored`` is not None when the
    version must be written whole (a column joined or a type widened), else the caller appends.
    """
    import pyarrow as pa

    from gyre.ingest.schema_types import widen_arrow

    if base is None:
        return accepted, stored
    schema = stored.schema if stored is not None else base.manifest.schema
    fields: list[pa.Field] = []
    for known in schema:
        if known.name not in accepted.column_names:
            # Absent from the batch: its rows hold null there.
            nullable = known.nullable or accepted.num_rows == 0
            fields.append(known if nullable else known.with_nullable(True))
            continue
        incoming = accepted.schema.field(known.name).type
        wide = widen_arrow(known.type, incoming)
        if wide is None:
            raise DataError(
                f"column '{known.name}' is stored as {known.type} but the batch has {incoming}, "
                "and no type holds both",
                hint="convert the column in the source, or ingest it as another source",
            )
        fields.append(known if wide.equals(known.type) else pa.field(known.name, wide))
    fields += [
        pa.field(name, accepted.schema.field(name).type)
        for name in accepted.column_names
        if schema.get_field_index(name) < 0
    ]
    unified = pa.schema(fields, metadata=schema.metadata)
    accepted = _fit(accepted, unified)
    if unified.equals(schema, check_metadata=False):
        return accepted, stored
    from gyre.datasets.reader import read_table

    rows = stored if stored is not None else read_table(ctx.artifacts, base.manifest)
    return accepted, _fit(rows, unified)


def _fit(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``: its columns in order and cast, absent ones null."""
    import pyarrow as pa

    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
