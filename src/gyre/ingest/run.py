"""Ingesting a configured source: batches -> contract -> dedup -> PII -> dataset version.

The source's plugin (``gyre.ingest.sources``) delivers batches it has not delivered before:
new files, rows past the cursor, pages past the last one. Each batch is one ``ingest`` run:

1. its schema is held to what the source knows under its ``schema_drift`` policy (new,
   missing and retyped columns; :mod:`gyre.ingest.schema_step`), then the contract splits it
   into accepted rows (cast to the declared types) and quarantined rows (file, line, rule,
   value, reason); a batch whose quarantined share exceeds the source's ``quarantine_limit``
   fails and commits nothing;
2. duplicates are dropped: exact copies, and repeated primary keys within the batch and
   against what earlier batches stored (``dedup:``), counted, never silently;
3. likely PII columns are detected and tagged in the schema, and the source's ``pii:`` policy
   masks, hashes or drops them;
4. the accepted rows become the next version of the source's dataset (the previous version plus
   this batch), the refused rows the next version of ``<source>.quarantine``, and the source's
   position (files seen, cursor, page), its drift events and contract version are committed in
   the same transaction as both, so a crash at any moment never loses or repeats a batch.

Every batch reports rows in = accepted + quarantined + deduplicated.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gyre.core.errors import BatchRefusedError
from gyre.core.lineage import dataset_node, source_node
from gyre.core.runs import code_hash, track_run

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

    import pyarrow as pa

    from gyre.core.config import SourceConfig
    from gyre.core.context import StageContext
    from gyre.core.raw_copy import RawCopy
    from gyre.core.runs import TrackedRun
    from gyre.datasets.catalog import DatasetVersion
    from gyre.ingest.contract import Contract
    from gyre.ingest.schema_step import HeldSchema
    from gyre.ingest.sources import IncomingBatch

QUARANTINE_SUFFIX = ".quarantine"
PII_SECRET_FILE = "pii.secret"


@dataclass(frozen=True)
class BatchReport:
    file: str
    rows_in: int
    accepted: int
    quarantined: int
    deduplicated: int
    dataset_version: str | None
    quarantine_version: str | None
    run_id: str
    pii: dict[str, str] = field(default_factory=dict)
    contract_version: int | None = None
    schema_drift: list[dict[str, Any]] = field(default_factory=list)
    refused: str | None = None  # why the batch was quarantined whole (on_refused_batch)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestReport:
    source: str
    batches: list[BatchReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # ingested files modified since

    @property
    def rows_in(self) -> int:
        return sum(b.rows_in for b in self.batches)

    @property
    def accepted(self) -> int:
        return sum(b.accepted for b in self.batches)

    @property
    def quarantined(self) -> int:
        return sum(b.quarantined for b in self.batches)

    @property
    def deduplicated(self) -> int:
        return sum(b.deduplicated for b in self.batches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "deduplicated": self.deduplicated,
            "batches": [b.as_dict() for b in self.batches],
            "skipped_already_ingested": self.skipped,
            "changed_since_ingested": self.changed,
        }


def ingest_source(
    ctx: StageContext,
    name: str,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> IngestReport:
    """Ingest every batch of the configured source ``name`` not ingested before.

    With ``follow`` it keeps going until ``stop`` is set: a stream keeps receiving, and a file
    source looks for new files every ``poll_seconds``. ``on_batch`` hears of each committed
    batch as it happens (a long-running follow reports as it goes).
    """
    return ingest_with(
        ctx, name, ctx.config.source(name), follow=follow, stop=stop, on_batch=on_batch
    )


def ingest_path(
    ctx: StageContext,
    location: str,
    *,
    name: str,
    contract: Path | None = None,
    quarantine_limit: float = 0.05,
    copy: RawCopy | None = None,
) -> IngestReport:
    """Ingest one file, glob or URL into dataset ``name`` without declaring a source.

    The format comes from the extension. The same file is not ingested twice into the same
    dataset (the dataset's source state remembers it), so re-running is safe. ``copy`` is the
    file's raw copy if the caller started it ahead (:func:`~gyre.ingest.large_files.copy_ahead`;
    the caller closes it).
    """
    from pathlib import Path

    from gyre.core.config import SourceConfig

    where = location if "://" in location else str(Path(location).resolve())
    config = SourceConfig.model_validate(
        {
            "type": "files",
            "path": where,
            "contract": str(contract.resolve()) if contract else None,
            "quarantine_limit": quarantine_limit,
        }
    )
    return ingest_with(ctx, name, config, copy=copy)


def ingest_with(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    copy: RawCopy | None = None,
) -> IngestReport:
    """Ingest the new batches of a source described by ``config`` into dataset ``name``;
    ``copy`` is the raw copy of a file among them, started ahead (see :func:`ingest_path`)."""
    import threading

    from gyre.ingest.block_run import ingest_large
    from gyre.ingest.contract import load_contract
    from gyre.ingest.large_files import LargeFile
    from gyre.ingest.sources import get_source, parse_options

    plugin = get_source(config.type)
    options = parse_options(config.type, config.options)
    contract_path = ctx.config.resolve(config.contract) if config.contract else None
    contract = load_contract(contract_path) if contract_path else None
    stop = stop or threading.Event()
    report = IngestReport(source=name)
    streaming = getattr(plugin, "streaming", False)
    while True:
        state = ctx.store.datasets.source_state(name)
        already = getattr(plugin, "already_ingested", None)
        if already is not None and not report.batches:
            report.skipped, report.changed = already(ctx, options, state)
        extra = {"follow": follow, "stop": stop} if streaming else {}
        batches = plugin.batches(ctx, name, config.type, options, state, **extra)
        try:
            for batch in batches:
                if isinstance(batch, LargeFile):
                    batch.copy, copy = copy, None  # taken only if it is this file's
                    done = ingest_large(
                        ctx, name, config, batch, contract=contract, contract_path=contract_path
                    )
                else:
                    done = ingest_batch(
                        ctx, name, config, batch, contract=contract, contract_path=contract_path
                    )
                report.batches.append(done)
                if on_batch is not None:
                    on_batch(done)
        finally:
            # Closed even when a batch fails, so a stream's connection never outlives the run.
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        # A stream follows by itself; other sources are asked again for new batches.
        if streaming or not follow or stop.wait(config.poll_seconds):
            return report


def ingest_batch(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    batch: IncomingBatch,
    *,
    contract: Contract | None,
    contract_path: Path | None,
) -> BatchReport:
    """Run one batch through contract, dedup and PII into the next dataset version."""
    with ingest_run(ctx, name, config, batch.label, batch.details, contract_path) as run:
        return ingest_in_run(ctx, run, name, config, batch, contract=contract)


@contextmanager
def ingest_run(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    label: str,
    details: Mapping[str, Any],
    contract_path: Path | None,
) -> Iterator[TrackedRun]:
    """The tracked run of one batch, reading source ``name``."""
    with track_run(
        ctx,
        kind="ingest",
        job=name,
        params={
            "batch": label,
            **details,
            "type": config.type,
            "quarantine_limit": config.quarantine_limit,
        },
        code=code_hash([contract_path] if contract_path else []),
    ) as run:
        run.input(source_node(name))
        yield run


def ingest_in_run(
    ctx: StageContext,
    run: TrackedRun,
    name: str,
    config: SourceConfig,
    batch: IncomingBatch,
    *,
    contract: Contract | None,
) -> BatchReport:
    """:func:`ingest_batch` inside a run the caller opened (and gave its source input)."""
    from gyre.datasets.catalog import stage_version
    from gyre.datasets.writer import append
    from gyre.ingest.schema_step import conform_to_stored

    for node, node_version in batch.inputs:
        run.input(node, version=node_version)
    base = latest_version(ctx, name)
    refusal: str | None = None
    try:
        accepted, quarantine, refused, held = _apply_contract(
            ctx, name, config, batch, contract, base
        )
    except BatchRefusedError as exc:
        if config.on_refused_batch != "quarantine":
            raise
        from gyre.ingest.held_back import hold_back

        accepted, quarantine, refused, held = hold_back(name, batch, exc, contract)
        refusal = exc.message
    if base is not None:
        run.input(dataset_node(name, base.record.version), version=base.record.content_id)
    accepted, deduplicated, base_table = deduplicate_against(ctx, config, accepted, base)
    accepted, pii_tags = protect_pii(ctx, config, accepted)
    accepted, base_table = conform_to_stored(ctx, base, accepted, base_table)
    stats = {
        "batch": batch.label,
        **batch.details,
        "rows_in": batch.rows_in,
        "accepted": accepted.num_rows,
        "quarantined": refused,
        "deduplicated": deduplicated,
        **({"pii": pii_tags} if pii_tags else {}),
        **({"refused": refusal} if refusal else {}),
        **held.stats,
    }
    if base_table is not None:  # keep: last replaced rows, or the schema grew: rewrite
        from gyre.datasets.writer import write_table

        manifest = write_table(ctx.artifacts, _concat(base_table, accepted))
    else:
        manifest = append(ctx.artifacts, base.manifest if base else None, accepted)
    staged = stage_version(
        ctx.artifacts,
        name,
        manifest,
        kind="source",
        stats=stats,
        # The first version is exactly the accepted rows, already in memory: profile them
        # there; a later one holds earlier batches too and is profiled from its parts.
        table=accepted if base is None and base_table is None else None,
        column_tags=pii_column_tags(config, pii_tags, accepted.column_names),
    )
    run.metrics.update(
        rows_in=batch.rows_in,
        accepted=accepted.num_rows,
        quarantined=refused,
        deduplicated=deduplicated,
    )
    from gyre.ingest.commit import commit_version

    stored, quarantine_ref = commit_version(
        ctx, run, name, config, staged, quarantine, state=batch.state, held=held
    )
    if batch.acknowledge is not None:  # committed: only now may a broker forget it
        _acknowledge(batch)
    return BatchReport(
        file=batch.label,
        rows_in=batch.rows_in,
        accepted=accepted.num_rows,
        quarantined=refused,
        deduplicated=deduplicated,
        dataset_version=stored.ref,
        quarantine_version=quarantine_ref,
        run_id=run.id,
        pii=pii_tags,
        contract_version=held.contract_version,
        schema_drift=held.event_dicts(),
        refused=refusal,
    )


def _apply_contract(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    batch: IncomingBatch,
    contract: Contract | None,
    base: DatasetVersion | None,
) -> tuple[pa.Table, pa.Table, int, HeldSchema]:
    """(accepted rows, quarantine records, rows refused, the schema step's outcome); raises
    past the quarantine limit or when a ``schema_drift: freeze`` policy refuses the batch."""
    from gyre.ingest.csv_batch import RawBatch, row_numbers
    from gyre.ingest.schema_step import hold_batch

    raw = RawBatch(
        file=batch.label,
        table=batch.table,
        lines=batch.positions if batch.positions is not None else row_numbers(batch.table.num_rows),
        malformed=batch.malformed if batch.malformed is not None else _no_malformed(),
        positions=batch.positions_kind,
    )
    # The batch is compared with what the source knows (its contract, or its stored rows)
    # under its schema_drift policy; without a contract rows are otherwise kept as read. A
    # batch past the quarantine limit raises before anything is stored.
    held = hold_batch(ctx, name, config, raw, contract, base)
    result = held.result
    from gyre.ingest.quarantine import attach_raw_rows, stamp

    quarantine = stamp(
        attach_raw_rows(result.quarantine, result.quarantined_rows), batch.position_names
    )
    return result.accepted_table, quarantine, result.quarantined, held


def _acknowledge(batch: IncomingBatch) -> None:
    """Tell the broker a committed batch is safe. A failure here loses nothing (the broker
    sends the messages again and the committed position recognises them), so it is logged,
    not raised: the version is committed and the run succeeded."""
    import logging

    assert batch.acknowledge is not None
    try:
        batch.acknowledge()
    except Exception as exc:  # any client error: the broker will redeliver
        logging.getLogger("gyre.ingest").warning(
            "%s: committed, but acknowledging to the broker failed (%s); the messages will "
            "be delivered again and recognised as stored",
            batch.label,
            exc,
        )


def _no_malformed() -> pa.Table:
    from gyre.ingest.csv_lines import MALFORMED_SCHEMA

    return MALFORMED_SCHEMA.empty_table()


def latest_version(ctx: StageContext, name: str) -> DatasetVersion | None:
    from gyre.core.errors import NotFoundError
    from gyre.datasets.catalog import get_version

    try:
        return get_version(ctx.store, ctx.artifacts, name)
    except NotFoundError:
        return None


def deduplicate_against(
    ctx: StageContext, config: SourceConfig, accepted: pa.Table, base: DatasetVersion | None
) -> tuple[pa.Table, int, pa.Table | None]:
    """(rows to store, rows dropped, the stored rows minus replaced keys when keep: last)."""
    if config.dedup is None:
        return accepted, 0, None
    from gyre.datasets.reader import read_table
    from gyre.ingest.dedup import DedupSpec, deduplicate, drop_keys

    spec = DedupSpec(
        primary_key=config.dedup.primary_key,
        keep=config.dedup.keep,
        cursor=config.dedup.cursor,
        exact_duplicates=config.dedup.exact_duplicates,
    )
    existing = None
    if base is not None:
        existing = read_table(ctx.artifacts, base.manifest, columns=list(spec.primary_key or ()))
    result = deduplicate(accepted, spec, existing_keys=existing)
    dropped = int(result.dropped.num_rows)
    if result.replaced_keys is not None and result.replaced_keys.num_rows and base is not None:
        stored = drop_keys(read_table(ctx.artifacts, base.manifest), result.replaced_keys)
        return result.table, dropped, stored
    return result.table, dropped, None


def protect_pii(
    ctx: StageContext, config: SourceConfig, accepted: pa.Table
) -> tuple[pa.Table, dict[str, str]]:
    """Tag likely PII columns; apply the source's policy (keep, mask, hash, drop)."""
    from gyre.ingest.pii import apply_pii_policy, detect_pii

    tags = {f.column: f.kind for f in detect_pii(accepted)}
    if not config.pii:
        return accepted, tags
    check_pii_columns(config, accepted.column_names)
    return apply_pii_policy(accepted, config.pii, secret=pii_secret(ctx)), tags


def pii_column_tags(
    config: SourceConfig, tags: Mapping[str, str], columns: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The schema tags of the PII found in stored ``columns``: its kind and the policy's action."""
    return {
        column: {"pii": kind, "pii_action": config.pii.get(column, "keep")}
        for column, kind in tags.items()
        if column in columns
    }


def check_pii_columns(config: SourceConfig, columns: Sequence[str]) -> None:
    """Refuse a ``pii:`` policy that names columns the source does not have."""
    unknown = sorted(set(config.pii) - set(columns))
    if unknown:
        from gyre.core.errors import ConfigError

        raise ConfigError(
            f"pii policy names column(s) {', '.join(unknown)} that the source does not have; "
            f"it has {', '.join(columns)}",
            hint="fix the `pii:` keys of this source in gyre.yaml",
        )


def pii_secret(ctx: StageContext) -> bytes:
    """The project's secret for hashing PII: ``GYRE_PII_SECRET``, else ``.gyre/pii.secret``.

    Created on first use with 32 random bytes, readable only by its owner. Keyed hashing is
    what keeps hashed e-mails or phone numbers from being reversed by trying every value.
    """
    import contextlib
    import os
    import secrets

    from_env = os.environ.get("GYRE_PII_SECRET")
    if from_env:
        return from_env.encode()
    path = ctx.paths.gyre_dir / PII_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file of this writer's own, linked into place only if no other writer
        # got there first (a link never replaces): two processes or threads creating the
        # secret at once both end up reading the one that won.
        tmp = path.with_name(f"{PII_SECRET_FILE}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _concat(stored: pa.Table, new: pa.Table) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables([stored, new.cast(stored.schema)])
