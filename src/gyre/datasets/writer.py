"""Write dataset versions: Arrow rows in, deterministic Parquet parts and a manifest out.

Rows are cut into parts of ``part_rows`` rows and each part into row groups of at most
:data:`ROW_GROUP_ROWS`; only one row group is held in memory and each part is written to a
temporary file in the store, then hashed and renamed into place, so a table or a stream of
record batches of any size is written in bounded memory. A table already in memory is written
part by part on :data:`WRITE_THREADS` threads (encoding and compressing Parquet releases the
GIL), which gives the same parts as writing them one after the other.

Content ids must depend on the rows alone, so every Parquet setting that changes the bytes is
pinned here (zstd at a fixed level, format 2.6, page version 1, dictionary encoding on and its
size limit) and the part and row-group boundaries depend only on the row count (the rows after
the last whole part, when there are at least :data:`SPLIT_LAST_PART_ROWS` of them, are stored
as two parts, written at once):
``write_table(t)`` and ``write_batches(t.schema, t.to_batches(max_chunksize=7))`` give the same
dataset version. Parquet records no timestamps; it does record the writer's library version
(``created_by``), so a pyarrow upgrade may change ids of newly written data, never the data
behind an existing id.

    manifest = write_table(store, table, part_rows=500_000)
    manifest2 = append(store, manifest, more_rows)     # reuses manifest's parts
    version_id = save_manifest(store, manifest2)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gyre.core.artifacts import ArtifactStore, BlobWriter
from gyre.core.errors import DataError
from gyre.datasets.manifest import DatasetManifest, PartRef, save_manifest

PART_ROWS = 1_000_000
# One row group per part: Parquet's dictionaries and statistics are per row group, and with
# 128k-row groups writing took 40% longer (0.84 s vs 0.59 s per million bench rows) for files
# 30% bigger. A part in memory is what the writer holds at most.
ROW_GROUP_ROWS = PART_ROWS
# A row group reaches Parquet as slices of this many rows, cut at fixed offsets from its first
# row: the bytes then depend on the rows alone, as when the group was one contiguous copy, and
# only the slices that straddle two incoming batches are copied (a 1M-row group of 190k-row
# blocks copies a third of its rows instead of all of them). A multiple of Parquet's 1,024-row
# write batches; at this size the bytes are even those of the contiguous copy.
WRITE_SLICE_ROWS = 1 << 16
# The last part is encoded only once the rows end; on one core it was the last second of a 5M-row
# ingest, with the other core idle. From this many rows on it is stored as two parts, halves
# cut at a slice boundary, encoded at once on two threads (a part's bytes depend on its rows
# alone, so this changes no other part). A fixed rule, not one of the machine's cores: the
# same rows must give the same parts everywhere.
SPLIT_LAST_PART_ROWS = 4 * WRITE_SLICE_ROWS
WRITE_THREADS = min(2, os.cpu_count() or 1)
"""Parts of an in-memory table written at once (each holds one row group in memory)."""

# Everything that changes the bytes of a part, pinned so that ids stay stable across defaults.
# zstd level 1 and dictionaries of at most 256 KiB a column: a column of mostly distinct
# values (ids, prices, e-mails) gives up on its dictionary early instead of hashing 1 MiB of
# values first. Per million bench rows: written in 0.38 s instead of 0.56 s, 39 MB instead of
# 36 MB (snappy: 0.31 s, 48 MB).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "version": "2.6",
    "data_page_version": "1.0",
    "use_dictionary": True,
    "dictionary_pagesize_limit": 256 << 10,
    "write_statistics": True,
    "store_schema": True,
}


def write_table(
    artifacts: ArtifactStore,
    table: pa.Table,
    *,
    part_rows: int = PART_ROWS,
    parent: str | None = None,
) -> DatasetManifest:
    """Store ``table`` as Parquet parts and return the (unsaved) manifest listing them."""
    if WRITE_THREADS > 1 and table.num_rows > part_rows >= 1:
        return _write_parts_concurrently(artifacts, table, part_rows, parent)
    return write_batches(
        artifacts, table.schema, table.to_batches(), part_rows=part_rows, parent=parent
    )


def _write_parts_concurrently(
    artifacts: ArtifactStore, table: pa.Table, part_rows: int, parent: str | None
) -> DatasetManifest:
    """:func:`write_table` with each part written and stored on a thread of its own.

    A part's row groups start at its first row whichever thread writes it, so the bytes, and
    the content ids, are those a single writer gives.
    """
    from concurrent.futures import ThreadPoolExecutor

    def write_part(start: int) -> list[PartRef]:
        writer = PartWriter(artifacts, table.schema, part_rows, first_row=start)
        with writer:
            for batch in table.slice(start, part_rows).to_batches():
                writer.add(batch)
        return writer.parts

    with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="gyre-parts") as pool:
        written = list(pool.map(write_part, range(0, table.num_rows, part_rows)))
    return DatasetManifest.build(
        table.schema, [part for parts in written for part in parts], parent
    )


def write_batches(
    artifacts: ArtifactStore,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    part_rows: int = PART_ROWS,
    parent: str | None = None,
) -> DatasetManifest:
    """Store a stream of record batches with ``schema`` as Parquet parts, in bounded memory.

    Every batch must have ``schema`` (schema metadata may differ; the dataset keeps
    ``schema``'s). Returns the manifest, not yet saved: see :func:`save_manifest`.
    """
    if part_rows < 1:
        raise DataError(
            f"part_rows must be at least 1, got {part_rows}",
            hint="use the default (1,000,000) unless parts must be smaller",
        )
    writer = PartWriter(artifacts, schema, part_rows)
    with writer:
        for index, batch in enumerate(batches):
            if not batch.schema.equals(schema, check_metadata=False):
                raise DataError(
                    f"record batch {index} does not have the dataset's schema: "
                    + "; ".join(
                        schema_differences(schema, batch.schema, "the dataset", "the batch")
                    ),
                    hint="cast every batch to one schema before writing, e.g. batch.cast(schema)",
                )
            if batch.schema.metadata != schema.metadata:
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            writer.add(batch)
    return DatasetManifest.build(schema, writer.parts, parent)


def append(
    artifacts: ArtifactStore,
    base: DatasetManifest | None,
    table: pa.Table,
    *,
    part_rows: int = PART_ROWS,
) -> DatasetManifest:
    """A new dataset version: ``base``'s parts, unchanged, followed by ``table``'s rows.

    The new manifest's ``parent`` is ``base``'s id, and ``base`` is saved so the chain can always
    be walked. Columns may come in another order; names, types and nullability must match,
    otherwise :class:`DataError` lists every difference. With no ``base``, this is
    :func:`write_table`.
    """
    if base is None:
        return write_table(artifacts, table, part_rows=part_rows)
    schema = base.schema
    table = conform(table, schema, what="the appended rows")
    added = write_table(artifacts, table, part_rows=part_rows)
    parent = save_manifest(artifacts, base)
    return DatasetManifest.build(schema, base.parts + added.parts, parent)


def conform(table: pa.Table, schema: pa.Schema, *, what: str = "the table") -> pa.Table:
    """``table`` with its columns in ``schema``'s order and ``schema``'s metadata.

    Raises :class:`DataError` naming each column whose presence, type or nullability differs.
    """
    problems = schema_differences(schema, table.schema, "the dataset", what, strict=False)
    for field in schema:
        if not field.nullable and field.name in table.column_names:
            nulls = table.column(field.name).null_count
            if nulls:
                problems.append(
                    f"column '{field.name}' is not nullable in the dataset "
                    f"but has {nulls} nulls in {what}"
                )
    if problems:
        raise DataError(
            f"{what} do not match the dataset's schema: " + "; ".join(problems),
            hint=(
                "cast the rows to the dataset's schema first, e.g. "
                "table.select(manifest.column_names).cast(manifest.schema), "
                "or write them as a new dataset with write_table"
            ),
        )
    columns = [table.column(field.name) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def schema_differences(
    expected: pa.Schema,
    actual: pa.Schema,
    expected_name: str,
    actual_name: str,
    *,
    strict: bool = True,
) -> list[str]:
    """Human-readable differences between two schemas, one string per column (metadata ignored).

    ``strict`` also compares column order and nullability; without it only names and types count.
    """
    problems: list[str] = []
    for field in expected:
        if actual.get_field_index(field.name) < 0:
            problems.append(f"column '{field.name}' ({field.type}) is missing from {actual_name}")
            continue
        other = actual.field(field.name)
        if other.type != field.type:
            problems.append(
                f"column '{field.name}' is {field.type} in {expected_name} "
                f"but {other.type} in {actual_name}"
            )
        elif strict and other.nullable != field.nullable:
            problems.append(
                f"column '{field.name}' is {_nullable(field)} in {expected_name} "
                f"but {_nullable(other)} in {actual_name}"
            )
    for field in actual:
        if expected.get_field_index(field.name) < 0:
            problems.append(f"column '{field.name}' ({field.type}) is not in {expected_name}")
    if strict and not problems and expected.names != actual.names:
        problems.append(
            f"columns are in another order: {expected_name} has {expected.names}, "
            f"{actual_name} has {actual.names}"
        )
    return problems


def _nullable(field: pa.Field) -> str:
    return "nullable" if field.nullable else "not nullable"


class PartWriter:
    """Cuts a stream of batches into row groups and parts at fixed row counts, and stores them.

    Boundaries fall on row counts only, never on how the input was batched, and each row group
    is handed to Parquet in slices of :data:`WRITE_SLICE_ROWS` rows from its first row (Parquet
    cuts pages where its input arrays end), so the Parquet bytes depend on the rows alone.
    """

    def __init__(
        self, artifacts: ArtifactStore, schema: pa.Schema, part_rows: int, *, first_row: int = 0
    ) -> None:
        self.artifacts = artifacts
        self.schema = schema
        self.part_rows = part_rows
        self.first_row = first_row  # of the whole table, for messages
        self.group_rows = min(part_rows, ROW_GROUP_ROWS)
        self.parts: list[PartRef] = []
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._part_written = 0
        self._writer: pq.ParquetWriter | None = None
        self._blob: BlobWriter | None = None  # the part being written, straight into the store

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                if not self._part_written and self._pending_rows >= SPLIT_LAST_PART_ROWS:
                    self._store_halves()
                else:
                    self._flush_group()
                    self._close_part()
            elif self._writer is not None:
                self._writer.close()
        finally:
            if self._blob is not None:
                self._blob.__exit__(None, None, None)  # an unfinished part is removed
                self._blob = None

    def unwritten(self) -> pa.Table | None:
        """The rows of the part not yet stored, while all of them are still in memory (none
        of its row groups written yet), else None. Read before ``__exit__`` writes them."""
        if self._part_written:
            return None
        return pa.Table.from_batches(self._pending, schema=self.schema)

    def add(self, batch: pa.RecordBatch) -> None:
        offset = 0
        while offset < batch.num_rows:
            room = min(
                self.group_rows - self._pending_rows,
                self.part_rows - self._part_written - self._pending_rows,
            )
            take = min(room, batch.num_rows - offset)
            self._pending.append(batch.slice(offset, take))
            self._pending_rows += take
            offset += take
            if (
                self._pending_rows == self.group_rows
                or self._part_written + self._pending_rows == self.part_rows
            ):
                self._flush_group()
                if self._part_written == self.part_rows:
                    self._close_part()

    def _store_halves(self) -> None:
        """Store the rows pending, none of them written yet, as two parts written at once (see
        :data:`SPLIT_LAST_PART_ROWS`)."""
        from concurrent.futures import ThreadPoolExecutor

        pending, rows = self._pending, self._pending_rows
        self._pending, self._pending_rows = [], 0
        half = rows // 2
        cut = half - half % WRITE_SLICE_ROWS or half
        first_row = self.first_row + sum(part.rows for part in self.parts)

        def store(batches: list[pa.RecordBatch], start: int, count: int) -> list[PartRef]:
            part = PartWriter(self.artifacts, self.schema, count, first_row=first_row + start)
            with part:
                for batch in batches:
                    part.add(batch)
            return part.parts

        head, tail = _split_batches(pending, cut)
        with ThreadPoolExecutor(1, thread_name_prefix="gyre-half") as pool:
            first = pool.submit(store, head, 0, cut)
            second = store(tail, cut, rows - cut)
            self.parts += first.result() + second

    def _flush_group(self) -> None:
        if not self._pending_rows:
            return
        group = _aligned(self._pending, self.schema)
        if self._writer is None:
            self._blob = self.artifacts.writer()
            self._writer = pq.ParquetWriter(str(self._blob.path), self.schema, **PARQUET_OPTIONS)
        try:
            self._writer.write_table(group, row_group_size=group.num_rows)
        except pa.ArrowException as exc:
            first = self.first_row + sum(part.rows for part in self.parts) + self._part_written
            raise DataError(
                f"rows {first}..{first + group.num_rows - 1} cannot be written as Parquet: {exc}",
                hint="check that non-nullable columns hold no nulls and the types are supported",
            ) from exc
        self._part_written += group.num_rows
        self._pending = []
        self._pending_rows = 0

    def _close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        assert self._blob is not None
        blob, self._blob = self._blob, None
        with blob:
            size = blob.path.stat().st_size
            cid = blob.finish()  # hashed and renamed in place: the part is never copied
        self.parts.append(PartRef(id=cid, rows=self._part_written, size=size))
        self._part_written = 0


def _split_batches(
    batches: list[pa.RecordBatch], cut: int
) -> tuple[list[pa.RecordBatch], list[pa.RecordBatch]]:
    """``batches`` as the ones holding their first ``cut`` rows and the ones holding the rest
    (a batch across the cut is sliced, not copied)."""
    head: list[pa.RecordBatch] = []
    tail: list[pa.RecordBatch] = []
    seen = 0
    for batch in batches:
        if seen >= cut:
            tail.append(batch)
        elif seen + batch.num_rows <= cut:
            head.append(batch)
        else:
            head.append(batch.slice(0, cut - seen))
            tail.append(batch.slice(cut - seen))
        seen += batch.num_rows
    return head, tail


def _aligned(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """``batches`` as one table whose chunks start every :data:`WRITE_SLICE_ROWS` rows."""
    slices: list[pa.RecordBatch] = []
    pieces: list[pa.RecordBatch] = []  # of the slice being gathered
    room = WRITE_SLICE_ROWS
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(room, batch.num_rows - offset)
            pieces.append(batch.slice(offset, take))
            offset += take
            room -= take
            if room == 0:
                slices.append(_joined(pieces))
                pieces, room = [], WRITE_SLICE_ROWS
    if pieces:
        slices.append(_joined(pieces))
    return pa.Table.from_batches(slices, schema=schema)


def _joined(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    return pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)
