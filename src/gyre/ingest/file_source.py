"""Files as a source: CSV, TSV, JSON, JSONL and Parquet, from local globs or fsspec URLs.

Each new file is one batch. Files already ingested are remembered by name in the source's
state (committed with the version they produced), so running ingest again takes only the new
ones. The raw bytes are stored content-addressed as they are parsed, so lineage reaches
the exact file a row came from.

    sources:
      rentals: {type: csv, path: data/incoming/*.csv}          # format from the type
      events:  {type: files, path: "s3://bucket/events/*.jsonl"}   # format from the extension
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from gyre.core.errors import SourceError
from gyre.core.lineage import file_node
from gyre.ingest.large_files import in_blocks
from gyre.ingest.sources import IncomingBatch

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.ingest.csv_batch import RawBatch
    from gyre.ingest.large_files import LargeFile

FORMAT_OF_TYPE = {
    "csv": "csv",
    "tsv": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "parquet": "parquet",
}


class FileOptions(BaseModel):
    """A file source's own keys in gyre.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, description="a glob relative to the project, or a URL")
    format: str | None = None  # only for `type: files`; default: from each file's extension


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def list_files(root: Path, pattern: str) -> list[tuple[str, str]]:
    """(name shown in reports and state, location to read) for every file ``pattern`` matches.

    Local names are relative to the project when the file is inside it, so the state stays
    valid if the project folder moves.
    """
    from gyre.ingest.formats import list_files as matching

    if _is_url(pattern):
        return [(url, url) for url in matching(pattern)]
    local = pattern.removeprefix("file://")
    full = local if Path(local).is_absolute() else str(root / local)
    out = []
    for found in matching(full):
        path = Path(found).resolve()
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        out.append((shown, str(path)))
    return out


class FileSource:
    """The plugin behind ``csv``, ``tsv``, ``json``, ``jsonl``, ``parquet`` and ``files``."""

    def options_model(self, type_name: str) -> type[BaseModel]:
        return FileOptions

    def already_ingested(
        self, ctx: StageContext, options: BaseModel, state: Mapping[str, Any]
    ) -> tuple[list[str], list[str]]:
        """Files the pattern matches that were ingested before, and among them the local ones
        whose size or modification time changed since. Those are not ingested again (their
        rows are stored already, and a file is a batch once); the caller says so instead of
        passing over them in silence. One listing of the pattern serves both."""
        assert isinstance(options, FileOptions)
        seen = state.get("files", {})
        ingested: list[str] = []
        changed: list[str] = []
        for shown, location in list_files(ctx.paths.root, options.path):
            then = seen.get(shown)
            if then is None:
                continue
            ingested.append(shown)
            stamped = isinstance(then, dict) and "size" in then and not _is_url(location)
            if stamped and _stamp(location) != {"size": then["size"], "mtime_ns": then["mtime_ns"]}:
                changed.append(shown)
        return ingested, changed

    def batches(
        self,
        ctx: StageContext,
        name: str,
        type_name: str,
        options: BaseModel,
        state: Mapping[str, Any],
    ) -> Iterator[IncomingBatch | LargeFile]:
        """New files, each one batch; a big delimited one as a :class:`LargeFile` to be read
        in blocks (:mod:`gyre.ingest.block_run`)."""
        assert isinstance(options, FileOptions)
        fmt = FORMAT_OF_TYPE.get(type_name) or options.format
        files = dict(state.get("files", {}))
        pending = [
            (s, loc) for s, loc in list_files(ctx.paths.root, options.path) if s not in files
        ]
        task = ctx.progress.task(f"ingest {name}", total=len(pending)) if pending else None
        for shown, location in pending:
            stamp = {} if _is_url(location) else _stamp(location)
            if in_blocks(location, fmt, stamp):
                from gyre.ingest.large_files import LargeFile

                large = LargeFile(
                    label=shown,
                    location=location,
                    stamp=stamp,
                    state={**state, "files": dict(files)},
                    whole=functools.partial(self._whole, ctx, fmt=fmt),
                )
                yield large
                assert large.content_id is not None, "the consumer stores the raw copy"
                files = dict(large.state_after(large.content_id)["files"])
                if task is not None:
                    task.advance()
                continue
            raw_id, raw = _store_and_read(ctx, location, shown, fmt)
            files[shown] = {"content_id": raw_id, **stamp}
            yield _batch(shown, raw_id, raw, {**state, "files": dict(files)})
            if task is not None:
                task.advance()
        if task is not None:
            task.close()

    def _whole(self, ctx: StageContext, large: LargeFile, *, fmt: str | None) -> IncomingBatch:
        """A file handed over for block reading, read whole after all."""
        raw_id, raw = _store_and_read(ctx, large.location, large.label, fmt)
        large.content_id = raw_id
        return _batch(large.label, raw_id, raw, large.state_after(raw_id))


def _batch(shown: str, raw_id: str, raw: RawBatch, state: dict[str, Any]) -> IncomingBatch:
    return IncomingBatch(
        label=shown,
        table=raw.table,
        positions=raw.lines,
        malformed=raw.malformed,
        state=state,
        inputs=((file_node(shown, raw_id), raw_id),),
        positions_kind=raw.positions,
        details={"file": shown, "raw_content_id": raw_id},
    )


def _store_and_read(
    ctx: StageContext, location: str, shown: str, fmt: str | None
) -> tuple[str, RawBatch]:
    """Store the file's exact bytes and read it: (their content id, the batch).

    A local uncompressed file is read from disk once and the stored bytes are the very bytes
    parsed (a 1 GB file used to be read twice), and it is stored while it is parsed: hashing
    and writing the copy release the GIL, and both are done before the batch exists (5M rows,
    880 MB: 3.6 s instead of 7.5 s). Others are stored as they are (compressed) and read again
    through fsspec.
    """
    from concurrent.futures import ThreadPoolExecutor

    from gyre.ingest.csv_batch import read_local_bytes
    from gyre.ingest.formats import is_compressed, parse_batch, read_batch

    if not _is_url(location) and not is_compressed(location):
        data = read_local_bytes(Path(location), shown)
        with ThreadPoolExecutor(1, thread_name_prefix="gyre-raw") as pool:
            stored = pool.submit(ctx.artifacts.put_bytes, data)
            # A file that cannot be parsed still leaves the pool only once its copy is stored,
            # as when the two ran one after the other; the parse error is the one raised.
            raw = parse_batch(data, location, format=fmt, display_name=shown)
            raw_id = stored.result()
        return raw_id, raw
    raw_id = _store_raw(ctx, location, shown)
    return raw_id, read_batch(location, format=fmt, display_name=shown)


def _store_raw(ctx: StageContext, location: str, shown: str) -> str:
    """Keep the file's exact bytes in the artifact store; returns their content id."""
    if not _is_url(location):
        return ctx.artifacts.put_file(location)
    import fsspec

    try:
        with fsspec.open(location, "rb") as fh:
            data: bytes = fh.read()
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {shown}: {exc}", retryable=True) from None
    return ctx.artifacts.put_bytes(data)


def _stamp(location: str) -> dict[str, int]:
    """Size and modification time of a local file, to notice it changing after ingest."""
    info = Path(location).stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
