"""Ingesting one big delimited file in blocks: bounded memory, both cores, the same outcome.

A file of :data:`~gyre.ingest.large_files.MIN_FILE_BYTES` or more is cut into blocks of whole
records (:mod:`.csv_blocks`) read back from its raw copy, which a thread of its own copies and
hashes meanwhile (:class:`~gyre.core.raw_copy.RawCopy`; ``gyre ingest FILE`` starts it before
the project is even opened, see :func:`~gyre.ingest.large_files.copy_ahead`). Each
block is held to the contract on a worker thread, exactly as a whole file would be row by row
(types, rules, nullability, in-block uniqueness, drift modes, PII policy), its accepted rows go
to one Parquet writer in file order (so the parts, and the version's content id, are those of
the same rows read whole), and its quarantine records, key values and statistics are kept.
What only the whole file can tell is judged at the end, before anything is registered: the
``rows`` bounds, ``freshness``, the quarantine limit, and keys repeated across blocks.

Block reading is an optimisation, never a second set of rules: where it could come out
differently from reading the file whole it declines (:class:`~gyre.ingest.csv_blocks.Declined`)
and the file is read whole: a source with ``dedup:``, no contract, a new column under
``schema_drift: {columns: evolve}``, a type widened under ``data_type: evolve``, a ``freeze``
refusal (whose message counts the whole file), a stored dataset whose schema the batch would
change, a key repeated across blocks, and any file :mod:`.csv_blocks` declines. Nothing is
registered before the end, so declining leaves no trace but unreferenced blobs.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import BatchRefusedError
from gyre.core.lineage import dataset_node
from gyre.ingest.block_pii import block_sample, detect_in_samples
from gyre.ingest.csv_blocks import (
    Block,
    BlockLayout,
    Declined,
    cut_blocks,
    open_blocks,
    read_block,
)
from gyre.ingest.drift import Known, SchemaDriftError, hold_to_contract
from gyre.ingest.large_files import LargeFile

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from gyre.core.config import SchemaDriftConfig, SourceConfig
    from gyre.core.context import StageContext
    from gyre.core.raw_copy import RawCopy
    from gyre.core.runs import TrackedRun
    from gyre.datasets.catalog import DatasetVersion
    from gyre.datasets.profile import DatasetProfile
    from gyre.datasets.profile_merge import ColumnPartial
    from gyre.ingest.commit import WrittenQuarantine
    from gyre.ingest.contract import Contract
    from gyre.ingest.csv_batch import BatchResult
    from gyre.ingest.drift import DriftEvent
    from gyre.ingest.run import BatchReport
    from gyre.ingest.schema_step import ContractVersions

log = logging.getLogger("gyre.ingest")

WORKERS = min(2, os.cpu_count() or 1)
_IN_FLIGHT = WORKERS + 2  # blocks being checked at once: two wait while the others run
_WRITES_QUEUED = 4  # checked blocks waiting for the writer before checking pauses
# The profile counts the distinct values of number, date and timestamp columns from the
# blocks' own arrays, kept up to this size (every such column of 5M bench rows: 400 MB), instead
# of reading the stored parts back (0.4 s of CPU of a 1.5 s profile). A column past it is read
# back as before.
_KEPT_BYTES = 512 << 20


@dataclass
class _Job:
    """What every block is checked with."""

    layout: BlockLayout
    contract: Contract  # the effective contract without the whole-file rules
    policy: SchemaDriftConfig
    known: Known
    config: SourceConfig
    secret: bytes
    stored_schema: pa.Schema | None
    keys: tuple[tuple[str, ...], ...]
    freshness: str | None
    pii_candidates: tuple[str, ...]
    profile: bool  # profile the rows (a first version in a local store)
    quarantine_base: DatasetVersion | None  # the version the file's quarantine records follow
    # Columns with unparsable values in a block checked so far: the next blocks parse them
    # expecting some (faster, same result; shared by the checking threads, under the GIL).
    unparsable_seen: set[str] = field(default_factory=set)
    # Text columns too varied to count value by value for the profile (see partial_profile).
    varied: set[str] = field(default_factory=set)


@dataclass
class _Checked:
    """One block after the contract."""

    rows: int  # rows Arrow read (malformed records not included)
    rows_in: int
    accepted: pa.Table
    quarantine: pa.Table
    quarantined: int
    events: tuple[DriftEvent, ...]
    keys: list[pa.Table]
    newest: Any
    samples: dict[str, pa.Array]  # PII candidates: evenly spread values, before the policy
    partial: list[ColumnPartial]


@dataclass
class _Outcome:
    """The whole file, checked and written, waiting to be judged and registered."""

    raw_id: str
    parts: list[Any] = field(default_factory=list)
    schema: pa.Schema | None = None
    rows: int = 0
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    quarantine: list[pa.Table] = field(default_factory=list)
    events: list[tuple[DriftEvent, ...]] = field(default_factory=list)
    keys: list[list[pa.Table]] = field(default_factory=list)
    newest: list[Any] = field(default_factory=list)
    pii: dict[str, str] = field(default_factory=dict)
    partials: list[list[ColumnPartial]] = field(default_factory=list)
    samples: dict[str, list[pa.Array]] = field(default_factory=dict)
    profile: DatasetProfile | None = None
    judged: pa.Table = field(default_factory=lambda: pa.table({}))  # the quarantine records
    written: WrittenQuarantine | None = None  # ``judged`` written as the next quarantine version
    kept: dict[str, list[pa.Array]] = field(default_factory=dict)  # see _KEPT_BYTES
    kept_bytes: int = 0
    unkept: set[str] = field(default_factory=set)  # columns past _KEPT_BYTES


def ingest_large(
    ctx: StageContext,
    name: str,
    config: SourceConfig,
    large: LargeFile,
    *,
    contract: Contract | None,
    contract_path: Path | None,
) -> BatchReport:
    """Ingest ``large`` in blocks, or whole where blocks could differ (see the module doc).

    One run either way: a file read whole after all is recorded as one run, not a failed one
    and another."""
    from gyre.ingest.run import ingest_in_run, ingest_run

    details = {"file": large.label}
    with ingest_run(ctx, name, config, large.label, details, contract_path) as run:
        try:
            return _ingest_blocks(ctx, run, name, config, large, contract)
        except Declined as why:
            log.info("%s: read whole, not in blocks: %s", large.label, why)
        except BatchRefusedError:
            if config.on_refused_batch != "quarantine":
                raise
            # Kept whole in the quarantine, which then holds every row: read it whole.
        if large.copy is not None:  # started ahead, declined before it was taken: stop it
            large.copy.close()
            large.copy = None
        batch = large.whole(large)  # its file input is recorded by ingest_in_run
        run.metrics.update(raw_content_id=large.content_id, read_in_blocks=False)
        return ingest_in_run(ctx, run, name, config, batch, contract=contract)


def _ingest_blocks(
    ctx: StageContext,
    run: TrackedRun,
    name: str,
    config: SourceConfig,
    large: LargeFile,
    contract: Contract | None,
) -> BatchReport:
    from gyre.ingest.commit import quarantine_base
    from gyre.ingest.run import check_pii_columns, latest_version, pii_secret
    from gyre.ingest.schema_step import ContractVersions, effective_policy, table_events

    if contract is None:
        raise Declined("no contract: the stored rows decide the types")
    if config.dedup is not None:
        raise Declined("dedup compares every row of the file")
    base = latest_version(ctx, name)
    policy = effective_policy(config, contract)
    events = table_events(name, large.label, policy, base)
    versions = ContractVersions(ctx, name, config, contract)
    effective = versions.effective
    check_pii_columns(config, effective.column_names)
    with large.raw_copy(ctx) as copy:
        layout = open_blocks(copy.head(1 << 20), large.label)
        new = [c for c in layout.names if c not in effective.column_names]
        if new and policy.columns == "evolve":
            raise Declined("new columns evolve the contract by their values")
        job = _Job(
            layout=layout,
            contract=effective.model_copy(update={"rows": None, "freshness": None}),
            policy=policy,
            known=Known(name, config.contract),
            config=config,
            secret=pii_secret(ctx) if config.pii else b"",  # read once, not on two threads
            stored_schema=base.manifest.schema if base is not None else None,
            keys=tuple(k for k in (effective.primary_key, effective.unique) if k),
            freshness=effective.freshness.column if effective.freshness else None,
            pii_candidates=tuple(
                spec.name for spec in effective.columns if spec.type in ("string", "int")
            ),
            profile=base is None and ctx.artifacts.is_local,
            quarantine_base=quarantine_base(ctx, name),
        )

        def judge(outcome: _Outcome) -> pa.Table:
            _refuse_keys_across_blocks(outcome, job.keys)
            return _judge(outcome, effective, config, large.label)

        outcome = _check_and_write(ctx, copy, job, large, judge)
    quarantine = outcome.judged
    large.content_id = outcome.raw_id
    versions.register(effective, "file", versions.kept)
    return _commit(
        ctx, run, name, config, large, effective, base, outcome, quarantine, events, versions
    )


def _check_and_write(
    ctx: StageContext,
    copy: RawCopy,
    job: _Job,
    large: LargeFile,
    judge: Callable[[_Outcome], pa.Table],
) -> _Outcome:
    """Check every block and write the accepted rows; ``judge`` applies the whole-file rules
    once every block is checked (returning the quarantine records, or raising), before the
    last part is written."""
    from gyre.datasets.profile_merge import finish_profile
    from gyre.datasets.writer import PART_ROWS, PartWriter
    from gyre.ingest.commit import write_quarantine

    checking = ThreadPoolExecutor(WORKERS, thread_name_prefix="gyre-block")
    writing = ThreadPoolExecutor(1, thread_name_prefix="gyre-block-write")
    # What only the whole file allows, at its end: three threads, so that the quarantine is
    # not written only once PII detection is done, nor the profile counted after either.
    finishing = ThreadPoolExecutor(3, thread_name_prefix="gyre-finish")
    writer: PartWriter | None = None
    checks: deque[Future[_Checked]] = deque()
    writes: deque[Future[None]] = deque()
    outcome = _Outcome(raw_id="")

    def take(done: _Checked) -> None:
        nonlocal writer
        if writer is None:
            outcome.schema = done.accepted.schema
            writer = PartWriter(ctx.artifacts, done.accepted.schema, PART_ROWS)
        _keep(outcome, done, keep_columns=job.profile)
        while len(writes) >= _WRITES_QUEUED:
            writes.popleft().result()
        writes.append(writing.submit(_write, writer, done.accepted))

    try:
        for block in cut_blocks(copy, name=large.label):
            checks.append(checking.submit(_check_block, block, job, copy.recycle))
            while checks and (len(checks) >= _IN_FLIGHT or checks[0].done()):
                take(checks.popleft().result())
        while checks:
            take(checks.popleft().result())
        assert writer is not None, "the first block (the header's) always comes"
        while writes:
            writes.popleft().result()
        outcome.judged = judge(outcome)  # a refused file goes no further
        # The last part is encoded (as two parts at once: see PartWriter). Meanwhile PII is
        # looked for in the blocks' samples, the profile is counted from the parts stored and
        # the last part's rows in memory, the quarantine records are written as the next
        # quarantine version, and the raw copy is synced (its bytes mostly on disk already).
        detecting = finishing.submit(detect_in_samples, outcome.samples, job.contract)
        profiling = None
        unwritten = writer.unwritten() if job.profile else None
        if unwritten is not None:
            stored = [ctx.artifacts.path_of(part.id) for part in writer.parts]
            profiling = finishing.submit(
                finish_profile, outcome.partials, outcome.schema, stored, unwritten, outcome.kept
            )
        quarantining = None
        if outcome.judged.num_rows:
            quarantining = finishing.submit(
                write_quarantine, ctx, job.quarantine_base, outcome.judged
            )
        closing = writing.submit(writer.__exit__, None, None, None)
        outcome.raw_id = copy.finish()
        closing.result()
        outcome.parts = list(writer.parts)
        if profiling is not None:
            outcome.profile = profiling.result()
        outcome.pii = detecting.result()
        if quarantining is not None:
            outcome.written = quarantining.result()
        return outcome
    except BaseException:
        for pending in checks:
            pending.cancel()
        if writer is not None:
            writing.submit(writer.__exit__, RuntimeError, None, None)
        raise
    finally:
        checking.shutdown(wait=True, cancel_futures=True)
        writing.shutdown(wait=True)
        finishing.shutdown(wait=True, cancel_futures=True)


def _write(writer: Any, table: pa.Table) -> None:
    for batch in table.to_batches():
        writer.add(batch)


def _keep(outcome: _Outcome, done: _Checked, *, keep_columns: bool) -> None:
    if done.quarantine.num_rows:
        # A record's row counts from the start of the file, as when it is read whole.
        at = done.quarantine.schema.get_field_index("row")
        rows = pc.add(done.quarantine.column(at), outcome.rows)
        outcome.quarantine.append(done.quarantine.set_column(at, "row", rows))
    outcome.rows += done.rows
    outcome.rows_in += done.rows_in
    outcome.accepted += done.accepted.num_rows
    outcome.quarantined += done.quarantined
    outcome.events.append(done.events)
    outcome.keys.append(done.keys)
    outcome.newest.append(done.newest)
    outcome.partials.append(done.partial)
    for column, values in done.samples.items():
        outcome.samples.setdefault(column, []).append(values)
    if keep_columns:
        _keep_columns(outcome, done.accepted)


def _keep_columns(outcome: _Outcome, accepted: pa.Table) -> None:
    """Keep the arrays of the number, date and timestamp columns for the profile, while they
    fit in :data:`_KEPT_BYTES`: references to what is written, not copies."""
    from gyre.datasets.profile_merge import fixed_width

    for column_field in accepted.schema:
        name = column_field.name
        if name in outcome.unkept or not fixed_width(column_field.type):
            continue
        column = accepted.column(name)
        if outcome.kept_bytes + column.nbytes > _KEPT_BYTES:
            outcome.unkept.add(name)
            dropped = outcome.kept.pop(name, [])
            outcome.kept_bytes -= sum(chunk.nbytes for chunk in dropped)
            continue
        outcome.kept.setdefault(name, []).extend(column.chunks)
        outcome.kept_bytes += column.nbytes


def _check_block(block: Block, job: _Job, recycle: Callable[[bytearray], None]) -> _Checked:
    """Read one block and hold it to the contract (on a worker thread)."""
    from gyre.datasets.profile_merge import partial_profile
    from gyre.datasets.writer import schema_differences
    from gyre.ingest.quarantine import attach_raw_rows, stamp

    raw = read_block(block, job.layout)
    recycle(block.data)  # its rows are Arrow's own now (read_block copies them out)
    try:
        held = hold_to_contract(
            raw, job.contract, job.policy, 1.0, job.known, unparsable_seen=job.unparsable_seen
        )
    except SchemaDriftError as exc:
        raise Declined(f"refused under freeze ({exc})") from None
    if held.evolved:
        raise Declined("a type widens under schema_drift.data_type: evolve")
    result = held.result
    accepted = result.accepted_table
    newest = None
    if job.freshness is not None:
        newest = pc.max(accepted.column(job.freshness)).as_py()
    keys = [
        accepted.select(list(names)).append_column("_line", result.accepted_lines)
        for names in job.keys
    ]
    samples = {c: block_sample(accepted.column(c)) for c in job.pii_candidates}
    accepted = _apply_pii(job, accepted)
    if job.stored_schema is not None:
        stored = job.stored_schema
        if schema_differences(stored, accepted.schema, "stored", "batch", strict=False):
            raise Declined("the batch would change the stored schema")
        accepted = pa.Table.from_arrays(
            [accepted.column(f.name).cast(f.type) for f in stored], schema=stored
        )
    quarantine = stamp(attach_raw_rows(result.quarantine, result.quarantined_rows), None)
    return _Checked(
        rows=raw.table.num_rows,
        rows_in=result.rows_in,
        accepted=accepted,
        quarantine=quarantine,
        quarantined=result.quarantined,
        events=held.events,
        keys=keys,
        newest=newest,
        samples=samples,
        # Only a profiled file needs them: an append is profiled from the stored parts.
        partial=partial_profile(
            accepted, text_extremes=False, varied=job.varied, counted=_allowed_counts(job, result)
        )
        if job.profile
        else [],
    )


def _allowed_counts(job: _Job, result: BatchResult) -> dict[str, pa.StructArray]:
    """Value counts of the columns held to ``allowed`` values, from the lookup that checked
    them (about 5 ms a column of a 190k-row block less): not for a column the PII policy
    rewrites, whose stored values are no longer those looked up."""
    rewritten = {c for c, action in job.config.pii.items() if action != "keep"}
    return {
        name: codes.value_counts()
        for name, codes in result.allowed_codes.items()
        if name not in rewritten and name not in job.varied
    }


def _apply_pii(job: _Job, accepted: pa.Table) -> pa.Table:
    from gyre.ingest.pii import apply_pii_policy

    if not job.config.pii:
        return accepted
    return apply_pii_policy(accepted, job.config.pii, secret=job.secret)


def _refuse_keys_across_blocks(outcome: _Outcome, keys: tuple[tuple[str, ...], ...]) -> None:
    """Decline when a key accepted in one block comes again in a later one: the rows that
    repeat it must be refused as whole-file reading refuses them, with the first line."""
    for index, names in enumerate(keys):
        tables = [block[index] for block in outcome.keys if block[index].num_rows]
        if len(tables) < 2:
            continue
        if len(names) == 1 and _ascending_blocks([t.column(0) for t in tables]):
            continue
        together = pa.concat_tables(tables).drop_columns(["_line"])
        valid = together
        for name in names:
            valid = valid.filter(pc.is_valid(valid[name]))
        counts = valid.group_by(list(names)).aggregate([([], "count_all")])
        if counts.num_rows != valid.num_rows:
            raise Declined(f"key ({', '.join(names)}) repeats across blocks")


def _ascending_blocks(columns: list[pa.ChunkedArray]) -> bool:
    """True when an integer key rises strictly within and across blocks (no repeats)."""
    from gyre.ingest.contract import strictly_increasing

    last = None
    for column in columns:
        if not len(column):
            continue
        if not strictly_increasing(column):
            return False
        if last is not None and column[0].as_py() <= last:
            return False
        last = column[-1].as_py()
    return True


def _judge(outcome: _Outcome, contract: Contract, config: SourceConfig, label: str) -> pa.Table:
    """The whole-file rules, in the order reading whole applies them (rows, freshness, the
    quarantine limit); returns the file's quarantine records."""
    from gyre.ingest.batch_check import refuse_past_limit
    from gyre.ingest.batch_rules import check_freshness, check_row_count

    check_row_count(contract, outcome.rows, label)
    if contract.freshness is not None:
        known = [value for value in outcome.newest if value is not None]
        check_freshness(contract.freshness, max(known) if known else None, label)
    # Empty when nothing was refused; its records are read only when some were.
    quarantine = pa.concat_tables(outcome.quarantine) if outcome.quarantine else pa.table({})
    refuse_past_limit(
        label,
        rows_in=outcome.rows_in,
        quarantined=outcome.quarantined,
        quarantine=quarantine,
        positions="line",
        quarantine_limit=config.quarantine_limit,
    )
    return quarantine


def _commit(
    ctx: StageContext,
    run: TrackedRun,
    name: str,
    config: SourceConfig,
    large: LargeFile,
    contract: Contract,
    base: DatasetVersion | None,
    outcome: _Outcome,
    quarantine: pa.Table,
    events: list[DriftEvent],
    versions: ContractVersions,
) -> BatchReport:
    from gyre.core.lineage import file_node
    from gyre.datasets.catalog import stage_version
    from gyre.datasets.manifest import DatasetManifest, save_manifest
    from gyre.datasets.profile import profile_table
    from gyre.datasets.profile_merge import finish_profile
    from gyre.ingest.commit import commit_version
    from gyre.ingest.csv_batch import BatchResult
    from gyre.ingest.drift_merge import merge_block_events
    from gyre.ingest.run import BatchReport, pii_column_tags

    label = large.label
    raw_id = outcome.raw_id
    run.input(file_node(label, raw_id), version=raw_id)
    if base is not None:
        run.input(dataset_node(name, base.record.version), version=base.record.content_id)
    declared = {spec.name: spec.type for spec in contract.columns}
    merged = merge_block_events(
        outcome.events, rows=outcome.rows, quarantine=quarantine, declared=declared
    )
    held = versions.held(label, BatchResult.empty(label), (*events, *merged))
    stats = {
        "batch": label,
        "file": label,
        "raw_content_id": raw_id,
        "rows_in": outcome.rows_in,
        "accepted": outcome.accepted,
        "quarantined": outcome.quarantined,
        "deduplicated": 0,
        **({"pii": outcome.pii} if outcome.pii else {}),
        **held.stats,
    }
    assert outcome.schema is not None
    parts = outcome.parts
    if base is not None:
        manifest = DatasetManifest.build(
            base.manifest.schema,
            base.manifest.parts + tuple(parts),
            save_manifest(ctx.artifacts, base.manifest),
        )
    else:
        manifest = DatasetManifest.build(outcome.schema, parts, None)
    profile = outcome.profile
    if base is None and not parts:  # every row refused: an empty first version
        profile = profile_table(outcome.schema.empty_table())
    elif profile is None and base is None and ctx.artifacts.is_local:
        paths = [ctx.artifacts.path_of(part.id) for part in parts]
        profile = finish_profile(outcome.partials, outcome.schema, paths, None, outcome.kept)
    staged = stage_version(
        ctx.artifacts,
        name,
        manifest,
        kind="source",
        stats=stats,
        profile=profile,
        column_tags=pii_column_tags(config, outcome.pii, outcome.schema.names),
    )
    run.metrics.update(
        rows_in=outcome.rows_in,
        accepted=outcome.accepted,
        quarantined=outcome.quarantined,
        deduplicated=0,
        raw_content_id=raw_id,
        read_in_blocks=True,
    )
    stored, quarantine_ref = commit_version(
        ctx,
        run,
        name,
        config,
        staged,
        outcome.written or quarantine,
        state=large.state_after(raw_id),
        held=held,
    )
    return BatchReport(
        file=label,
        rows_in=outcome.rows_in,
        accepted=outcome.accepted,
        quarantined=outcome.quarantined,
        deduplicated=0,
        dataset_version=stored.ref,
        quarantine_version=quarantine_ref,
        run_id=run.id,
        pii=outcome.pii,
        contract_version=held.contract_version,
        schema_drift=held.event_dicts(),
    )
