"""The quarantine: rows a contract refused, what is wrong with them, and replaying them.

Each source's refused rows live in the dataset ``<source>.quarantine``, one record per broken
rule (file, line or record number, column, rule, value, reason) plus ``raw``: the whole row as
read, as JSON; ``position``: the source's own name for the record where it has one (a SQL row's
key, a REST page and item, a stream's entry id); and ``quarantined_at``. After the contract or
the upstream data is fixed, ``replay`` holds every refused row to the *current* contract again:
rows that now pass become the next version of the source (through the same dedup and PII
handling as any batch), and the next version of the quarantine keeps only the rows that still
fail. Both versions commit in one transaction.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import NotFoundError
from gyre.ingest.parsing import text_bytes

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from sqlalchemy import Connection

    from gyre.core.context import StageContext

RAW_COLUMN = "raw"
POSITION_COLUMN = "position"
TIME_COLUMN = "quarantined_at"
SUFFIX = ".quarantine"


def attach_raw_rows(quarantine: pa.Table, quarantined_rows: pa.Table) -> pa.Table:
    """Add ``raw`` (the input row as JSON, by its line) to each quarantine record.

    Records with no input row (a line that could not be split into fields) get null: they
    cannot be replayed, only re-ingested from a corrected file.
    """
    columns = [c for c in quarantined_rows.column_names if c != "_line"]
    lines = quarantined_rows["_line"] if quarantined_rows.num_rows else None
    if lines is not None and _distinct(lines) and _all_text(quarantined_rows, columns):
        # Rows of text keyed by distinct lines (every file): JSON built by Arrow, not per row.
        texts = rows_as_json(quarantined_rows.select(columns))
        at = pc.index_in(quarantine["line"], value_set=lines.combine_chunks())
        return quarantine.append_column(RAW_COLUMN, pc.take(texts, at))
    by_line: dict[Any, str] = {}
    if lines is not None:
        rows = quarantined_rows.select(columns).to_pylist()
        by_line = {
            line: json.dumps(row, default=str, ensure_ascii=False)
            for line, row in zip(lines.to_pylist(), rows, strict=True)
        }
    raw = [by_line.get(line) for line in quarantine["line"].to_pylist()]
    return quarantine.append_column(RAW_COLUMN, pa.array(raw, pa.string()))


def _distinct(lines: pa.ChunkedArray) -> bool:
    return bool(lines.null_count == 0 and pc.count_distinct(lines).as_py() == len(lines))


def _all_text(table: pa.Table, columns: list[str]) -> bool:
    return bool(columns) and all(pa.types.is_string(table.schema.field(c).type) for c in columns)


# What json.dumps escapes in a string besides its control characters (ensure_ascii=False).
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'))


def rows_as_json(table: pa.Table) -> pa.Array:
    """Each row of a table of text columns as the JSON object ``json.dumps`` writes for it
    (``ensure_ascii=False``: keys and values in order, nulls as ``null``), built column-wise.
    Values with a control character are left to ``json.dumps``, which escapes each its way."""
    pieces: list[pa.Array | str] = []
    control = pa.array(np.zeros(table.num_rows, dtype=bool))
    for index, name in enumerate(table.column_names):
        values = table.column(name).combine_chunks()
        text = text_bytes(values) if values.type == pa.string() else None
        # Most columns hold neither control characters nor characters to escape: one look at
        # their bytes spares them the regular expression and the replacements.
        if text is None or np.any(text < 0x20):
            control = pc.or_(
                control, pc.match_substring_regex(values, "[\\x00-\\x1f]").fill_null(False)
            )
        escaped = values
        if text is None or np.any((text == ord("\\")) | (text == ord('"'))):
            for plain, escape in _JSON_ESCAPES:
                escaped = pc.replace_substring(escaped, plain, escape)
        quoted = pc.binary_join_element_wise('"', escaped, '"', "")
        key = json.dumps(name, ensure_ascii=False)
        pieces += [("{" if index == 0 else ", ") + key + ": ", pc.fill_null(quoted, "null")]
    texts = pc.binary_join_element_wise(*pieces, "}", "")
    if pc.any(control).as_py():
        where = pc.indices_nonzero(control)
        rows = table.take(where).to_pylist()
        dumped = pa.array([json.dumps(row, ensure_ascii=False) for row in rows], pa.string())
        texts = pc.replace_with_mask(texts, control, dumped)
    return texts


def stamp(
    quarantine: pa.Table, names: Mapping[int, str] | None, at: datetime | None = None
) -> pa.Table:
    """Add ``position`` (the source's own name for each record's place, where it has one:
    ``orders#id=42``, a Redis entry id, ``p3:1207``) and ``quarantined_at`` (UTC)."""
    from datetime import UTC
    from datetime import datetime as clock

    lines = quarantine["line"].to_pylist()
    position = [None if names is None or line is None else names.get(line) for line in lines]
    when = at or clock.now(UTC)
    return quarantine.append_column(POSITION_COLUMN, pa.array(position, pa.string())).append_column(
        TIME_COLUMN, pa.array([when] * quarantine.num_rows, pa.timestamp("us", tz="UTC"))
    )


@dataclass(frozen=True)
class QuarantineSummary:
    source: str
    version: str
    records: int
    rows: int
    by_rule: dict[str, int]
    files: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarise(ctx: StageContext, source: str) -> QuarantineSummary | None:
    """Counts for ``source``'s quarantine, or None when nothing was ever refused."""
    from gyre.datasets.catalog import get_version
    from gyre.datasets.reader import read_table

    try:
        version = get_version(ctx.store, ctx.artifacts, source + SUFFIX)
    except NotFoundError:
        return None
    table = read_table(ctx.artifacts, version.manifest, columns=["file", "line", "column", "rule"])
    keys = {
        (f, line)
        for f, line in zip(table["file"].to_pylist(), table["line"].to_pylist(), strict=True)
    }
    rules = Counter(
        f"{c} {r}"
        for c, r in zip(table["column"].to_pylist(), table["rule"].to_pylist(), strict=True)
    )
    files = Counter(table["file"].to_pylist())
    return QuarantineSummary(
        source, version.ref, table.num_rows, len(keys), dict(rules.most_common()), dict(files)
    )


@dataclass(frozen=True)
class ReplayReport:
    source: str
    replayed: int
    accepted: int
    still_quarantined: int
    not_replayable: int
    dataset_version: str | None
    quarantine_version: str | None
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def replay(ctx: StageContext, source: str) -> ReplayReport:
    """Hold every refused row of ``source`` to its current contract again (see module doc)."""
    from gyre.core.lineage import dataset_node
    from gyre.core.runs import track_run
    from gyre.datasets.catalog import get_version, register_version, stage_version
    from gyre.datasets.reader import read_table
    from gyre.datasets.writer import append, write_table
    from gyre.ingest.contract import load_contract
    from gyre.ingest.csv_batch import RawBatch
    from gyre.ingest.csv_lines import MALFORMED_SCHEMA
    from gyre.ingest.run import deduplicate_against, latest_version, protect_pii
    from gyre.ingest.schema_step import conform_to_stored, hold_batch

    config = ctx.config.source(source)
    if config.contract is None:
        raise NotFoundError(
            f"source '{source}' has no contract, so nothing was quarantined by one",
            hint="replay holds refused rows to the source's contract; declare one in gyre.yaml",
        )
    contract = load_contract(ctx.config.resolve(config.contract))
    q_name = source + SUFFIX
    quarantined = get_version(ctx.store, ctx.artifacts, q_name)
    records = read_table(ctx.artifacts, quarantined.manifest)
    with track_run(ctx, kind="replay", job=source, params={"quarantine": quarantined.ref}) as run:
        run.input(
            dataset_node(q_name, quarantined.record.version), version=quarantined.record.content_id
        )
        # Each refused row appears once per broken rule; (file, line) identifies the row.
        where = list(zip(records["file"].to_pylist(), records["line"].to_pylist(), strict=True))
        rows: dict[tuple[Any, Any], dict[str, Any]] = {}
        unreadable: set[tuple[Any, Any]] = set()
        for key, raw in zip(where, records[RAW_COLUMN].to_pylist(), strict=True):
            if raw is None:
                unreadable.add(key)
            else:
                rows.setdefault(key, json.loads(raw))
        not_replayable = len(unreadable)
        keys = list(rows)
        table = (
            pa.Table.from_pylist(
                [
                    {k: None if v is None else str(v) for k, v in row.items()}
                    for row in rows.values()
                ]
            )
            if rows
            else pa.table({c: pa.array([], pa.string()) for c in contract.column_names})
        )
        # Replayed rows meet the schema step as any batch does: the contract plus what schema
        # drift evolved, under the source's policy (a refused row simply stays quarantined).
        raw = RawBatch(
            file="replay",
            table=table,
            lines=pa.array(range(len(keys)), pa.int64()),
            malformed=MALFORMED_SCHEMA.empty_table(),
            positions="record",
        )
        base = latest_version(ctx, source)
        held = hold_batch(
            ctx, source, config.model_copy(update={"quarantine_limit": 1.0}), raw, contract, base
        )
        result = held.result
        fixed = {keys[i] for i in result.accepted_lines.to_pylist()}
        accepted, deduplicated, stored = result.accepted_table, 0, None
        if accepted.num_rows:
            if base is not None:
                run.input(dataset_node(source, base.record.version), version=base.record.content_id)
            accepted, deduplicated, stored = deduplicate_against(ctx, config, accepted, base)
            accepted, _tags = protect_pii(ctx, config, accepted)
            accepted, stored = conform_to_stored(ctx, base, accepted, stored)
        keep = pa.array([key not in fixed for key in where])
        remaining, explained = _explain_held_back(records.filter(keep), keys, fixed, result)
        stats = {
            "replayed": len(keys),
            "accepted": accepted.num_rows,
            "deduplicated": deduplicated,
            "still_quarantined": len(keys) - len(fixed),
            **held.stats,
        }
        outputs: list[Any] = []
        source_ref = None
        if accepted.num_rows or explained:
            staged_quarantine = stage_version(
                ctx.artifacts,
                q_name,
                write_table(ctx.artifacts, remaining),
                kind="quarantine",
                stats=stats,
            )
        if accepted.num_rows:
            manifest = (
                write_table(ctx.artifacts, pa.concat_tables([stored, accepted.cast(stored.schema)]))
                if stored is not None
                else append(ctx.artifacts, base.manifest if base else None, accepted)
            )
            staged = stage_version(ctx.artifacts, source, manifest, kind="source", stats=stats)

            def with_quarantine(conn: Connection, version: int) -> None:
                outputs.append(
                    register_version(ctx.store, staged_quarantine, run_id=run.id, conn=conn)
                )
                held.commit(ctx.store, conn, run_id=run.id, dataset_version=version)

            registered = register_version(ctx.store, staged, run_id=run.id, also=with_quarantine)
            source_ref = registered.ref
            run.output(
                dataset_node(source, registered.record.version),
                version=registered.record.content_id,
            )
        elif explained:
            # Nothing passes yet, but rows kept whole from a refused batch now say which rule
            # each breaks: a new quarantine version, alone.
            outputs.append(register_version(ctx.store, staged_quarantine, run_id=run.id))
        else:
            # Nothing passes yet: the quarantine is unchanged, so no new version either.
            outputs.append(quarantined)
        q_version = outputs[-1]
        run.output(
            dataset_node(q_name, q_version.record.version), version=q_version.record.content_id
        )
        run.metrics.update(stats)
    return ReplayReport(
        source=source,
        replayed=len(keys),
        accepted=int(accepted.num_rows),
        still_quarantined=len(keys) - len(fixed),
        not_replayable=not_replayable,
        dataset_version=source_ref,
        quarantine_version=q_version.ref,
        run_id=run.id,
    )


def _explain_held_back(
    remaining: pa.Table, keys: list[tuple[Any, Any]], fixed: set[tuple[Any, Any]], result: Any
) -> tuple[pa.Table, bool]:
    """``remaining`` with the rows of a batch kept whole (``on_refused_batch: quarantine``,
    rule ``batch_refused`` alone) that still fail given the records of the rules they break,
    so a replay says what is wrong with each; True when any row was so explained."""
    from gyre.ingest.held_back import RULE

    rules: dict[tuple[Any, Any], set[str]] = {}
    for file, line, rule in zip(
        remaining["file"].to_pylist(),
        remaining["line"].to_pylist(),
        remaining["rule"].to_pylist(),
        strict=True,
    ):
        rules.setdefault((file, line), set()).add(rule)
    held = {key for key, found in rules.items() if found == {RULE} and key not in fixed}
    if not held:
        return remaining, False
    index = {key: i for i, key in enumerate(keys)}
    by_row: dict[int, list[dict[str, Any]]] = {}
    for record in result.quarantine.to_pylist():
        by_row.setdefault(record["line"], []).append(record)
    rows = remaining.to_pylist()
    out = []
    for row in rows:
        key = (row["file"], row["line"])
        found = by_row.get(index[key], [])
        if key not in held or not found:
            out.append(row)
            continue
        for record in found:
            out.append({**row, **{k: record[k] for k in ("column", "rule", "value", "reason")}})
    table = pa.Table.from_pylist(out, schema=remaining.schema)
    order = pc.sort_indices(table, [("file", "ascending"), ("line", "ascending")])
    return table.take(order), True


def records(ctx: StageContext, source: str, *, limit: int | None = None) -> pa.Table:
    """The quarantine records of ``source`` (newest version), ordered by file and line."""
    from gyre.datasets.catalog import get_version
    from gyre.datasets.reader import read_table

    version = get_version(ctx.store, ctx.artifacts, source + SUFFIX)
    table = read_table(ctx.artifacts, version.manifest)
    table = table.take(pc.sort_indices(table, [("file", "ascending"), ("line", "ascending")]))
    return table.slice(0, limit) if limit is not None else table
