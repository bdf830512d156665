"""Which files are read in blocks (:mod:`gyre.ingest.block_run`), and their raw copy started
before the rest of the ingest is even imported.

Light on purpose: :func:`copy_ahead` runs at the very start of ``gyre ingest FILE``, and whatever
it imports delays the copy it starts (see :mod:`gyre.core.raw_copy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.core.artifacts import ArtifactStore
    from gyre.core.context import StageContext
    from gyre.core.raw_copy import RawCopy
    from gyre.ingest.sources import IncomingBatch

BLOCK_BYTES = 32 << 20
"""About how much of the file one block holds (whole records, so a little less); the
environment variable ``GYRE_INGEST_BLOCK_BYTES`` overrides it."""
MIN_FILE_BYTES = 128 << 20
"""Smaller files are read whole: one block would hold most of them anyway
(``GYRE_INGEST_BLOCKS_FROM_BYTES`` overrides it)."""
BLOCK_BYTES_VARIABLE = "GYRE_INGEST_BLOCK_BYTES"
MIN_FILE_BYTES_VARIABLE = "GYRE_INGEST_BLOCKS_FROM_BYTES"
_DELIMITED = (".csv", ".tsv")  # what the built-in formats read in blocks, by extension


def configured_block_bytes() -> int:
    """:data:`BLOCK_BYTES`, or the environment's ``GYRE_INGEST_BLOCK_BYTES``."""
    return _from_environment(BLOCK_BYTES_VARIABLE, BLOCK_BYTES)


def configured_min_file_bytes() -> int:
    """:data:`MIN_FILE_BYTES`, or the environment's ``GYRE_INGEST_BLOCKS_FROM_BYTES``."""
    return _from_environment(MIN_FILE_BYTES_VARIABLE, MIN_FILE_BYTES)


def _from_environment(variable: str, default: int) -> int:
    from gyre.core.errors import ConfigError

    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise ConfigError(
            f"{variable}={text!r} is not a number of bytes",
            hint=f"set a positive whole number, or unset it for the default ({default})",
        )
    return value


def in_blocks(location: str, fmt: str | None, stamp: Mapping[str, int]) -> bool:
    """Whether a file is big, local, uncompressed delimited text: read in blocks then."""
    from gyre.ingest.formats import format_for, is_compressed

    if "://" in location or is_compressed(location) or not stamp:
        return False
    if (fmt or format_for(location)) not in ("csv", "tsv"):
        return False
    return stamp["size"] >= configured_min_file_bytes()


def copy_ahead(location: str, artifacts: ArtifactStore) -> RawCopy | None:
    """Start the raw copy of ``location`` now if it looks like a file to be read in blocks (a
    big local ``.csv`` or ``.tsv``, into a local store); None otherwise, or when it cannot be
    opened (the ingest then says why, in its own words).

    Only a guess made before the project is read: the ingest takes the copy if the file is read
    in blocks after all and has not changed since (:func:`gyre.ingest.block_run.ingest_large`),
    and the caller closes it either way. A file ingested before is copied for nothing until it
    is closed, which stops the copy and deletes it unread: its bytes never reach the disk."""
    if "://" in location or any(c in location for c in "*?[") or not artifacts.is_local:
        return None
    path = Path(location)
    if path.suffix.lower() not in _DELIMITED:
        return None
    try:
        if not path.is_file() or path.stat().st_size < configured_min_file_bytes():
            return None
        from gyre.core.raw_copy import RawCopy

        return RawCopy(str(path.resolve()), artifacts)
    except Exception:  # a guess: whatever is wrong, the ingest itself reports it
        return None


@dataclass
class LargeFile:
    """A file big enough to be read in blocks, as the file source hands it over.

    ``whole()`` reads it as an ordinary batch instead. Either way the consumer sets
    ``content_id`` (the stored raw copy) before the source moves on, since the state it
    commits for the next file names this one's copy.
    """

    label: str
    location: str
    stamp: dict[str, int]
    state: dict[str, Any]  # the source's position before this file
    whole: Callable[[LargeFile], IncomingBatch]
    content_id: str | None = None
    copy: RawCopy | None = None  # its raw copy, if one was started ahead (the starter closes it)

    def raw_copy(self, ctx: StageContext) -> RawCopy:
        """The copy started ahead, if it is of this very file (same size and modification
        time) into this store; else a new one."""
        from gyre.core.raw_copy import RawCopy

        ahead, self.copy = self.copy, None
        if ahead is not None:
            if (
                ahead.location == self.location
                and ahead.stamp == self.stamp
                and ahead.artifacts is ctx.artifacts
            ):
                return ahead
            ahead.close()
        return RawCopy(self.location, ctx.artifacts)

    def state_after(self, raw_id: str) -> dict[str, Any]:
        files = {**self.state.get("files", {}), self.label: {"content_id": raw_id, **self.stamp}}
        return {**self.state, "files": files}
