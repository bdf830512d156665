"""A local file copied into the artifact store on a thread of its own, readable as it arrives.

A big file is stored exactly as it came (its raw copy) and read back from that copy, so what is
checked is what is stored. The copy is made in the kernel and hashed as it goes on a thread of
its own (both let go of the interpreter lock), started as early as the caller likes: started
before the project's metadata store and the ingest code are even imported, a 1 GB file is
copied and hashed on the core that start-up leaves idle (0.9 s of work a 5M-row ingest used to
do between its blocks).

    with RawCopy(path, artifacts) as copy:
        head = copy.head(1 << 20)
        while got := copy.take(32 << 20):       # waits until that much is copied, or the end
            block = copy.read_at(offset, got)   # from the copy, as often as needed
            ...
        content_id = copy.finish()              # waits for the hash; synced and stored

The copy keeps at most :data:`LEAD_BYTES` ahead of what was taken, so a file bigger than memory
is not copied out of the page cache before its blocks are read. Leaving the ``with`` block
without :meth:`~RawCopy.finish` stops the thread and removes the unfinished copy.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gyre.core.artifacts import ArtifactStore, BlobWriter

LEAD_BYTES = 1 << 30
"""How far the copy may run ahead of what was taken: the whole of most files, and no more than
the page cache of a small machine holds comfortably."""
CHUNK_BYTES = 1 << 23
"""Copied, then read back and hashed, at a time: still in the cache when it is hashed."""


class RawCopy:
    """The copy of the local file ``location`` into ``artifacts``, made on a thread of its own
    from the moment this is created (see the module doc). The file is opened here: an
    unreadable one raises :class:`OSError` at once."""

    def __init__(
        self,
        location: str,
        artifacts: ArtifactStore,
        *,
        lead: int = LEAD_BYTES,
        chunk: int = CHUNK_BYTES,
    ) -> None:
        self.location = location
        self.artifacts = artifacts
        self._source = os.open(location, os.O_RDONLY)
        try:
            info = os.fstat(self._source)
            self.stamp = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
            self._blob: BlobWriter | None = artifacts.writer()
        except BaseException:
            os.close(self._source)
            raise
        self._lead = lead
        self._chunk = chunk
        self._changed = threading.Condition()
        self._copied = 0  # bytes copied so far
        self._taken = 0  # bytes handed out by take()
        self._wanted = 0  # what a take() waiting now asks for
        self._ended = False  # the whole file is copied
        self._stopping = False
        self._error: BaseException | None = None
        self._spare: list[bytearray] = []
        self._thread = threading.Thread(target=self._copy, name="gyre-raw-copy", daemon=True)
        self._thread.start()

    def __enter__(self) -> RawCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def head(self, size: int) -> bytes:
        """The file's first ``size`` bytes (fewer if it is shorter), read from the file itself
        by the descriptor being copied."""
        return os.pread(self._source, size, 0)

    def take(self, limit: int) -> int:
        """Take up to ``limit`` more bytes of the copy, waiting until they are copied; how many
        were taken, 0 at the end of the file. Raises what stopped the copy, if anything did,
        once fewer than ``limit`` bytes are left before it."""
        with self._changed:
            self._wanted = limit  # the copy goes on past its lead for this much
            self._changed.notify_all()
            while self._copied - self._taken < limit and not self._ended and self._error is None:
                self._changed.wait()
            self._wanted = 0
            # Bytes copied before a failure are handed out first: the failure is raised only
            # where it leaves too few (whenever the copy thread got to it).
            if self._error is not None and self._copied - self._taken < limit:
                raise self._error
            got = min(limit, self._copied - self._taken)
            self._taken += got
            self._changed.notify_all()  # the copy may go on
            return got

    def read_at(self, offset: int, size: int) -> bytearray:
        """``size`` of the bytes taken so far, from ``offset``, read from the copy.

        Into a buffer handed back with :meth:`recycle` where there is one, not into a new one
        that Python zeroes first while holding the interpreter lock (which stalled the checking
        threads about 15 ms a block). The kernel is then told to write these bytes to disk."""
        blob = self._open_blob()
        with self._changed:
            buffer = self._spare.pop() if self._spare else None
        if buffer is None:
            # Sized at once: growing an empty one copied a zeroed block into it, touching
            # twice the memory (a sixth of the 5M-row ingest's page faults).
            buffer = bytearray(size)
        elif len(buffer) > size:
            del buffer[size:]  # keeps its memory: the next block is about as long
        elif len(buffer) < size:
            buffer += bytes(size - len(buffer))
        got = blob.read_into(offset, buffer)
        del buffer[got:]
        blob.write_back(offset, got)
        return buffer

    def recycle(self, buffer: bytearray) -> None:
        """Read later bytes into ``buffer`` (one :meth:`read_at` returned): call once nothing
        uses it any more."""
        with self._changed:
            self._spare.append(buffer)

    def finish(self) -> str:
        """Wait for the whole file to be copied and hashed, then sync and store the copy;
        returns its content id."""
        with self._changed:
            self._wanted = 1 << 62  # the rest, however far past the lead (nothing waits in take)
            self._changed.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error
        blob = self._open_blob()
        self._blob = None
        with blob:
            return blob.finish()

    def close(self) -> None:
        """Stop copying and remove the copy unless :meth:`finish` stored it (safe to repeat)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()
        if self._blob is not None:
            self._blob.__exit__(None, None, None)
            self._blob = None
        if self._source >= 0:
            os.close(self._source)
            self._source = -1

    def _open_blob(self) -> BlobWriter:
        if self._blob is None:
            raise RuntimeError(f"the raw copy of {self.location} is closed")
        return self._blob

    def _copy(self) -> None:
        """The thread: copy in chunks, each hashed just after it is copied."""
        blob = self._open_blob()
        buffer = bytearray(self._chunk)
        try:
            while True:
                with self._changed:
                    while not self._stopping and self._copied - self._taken >= max(
                        self._lead, self._wanted
                    ):
                        self._changed.wait()
                    if self._stopping:
                        return
                got = blob.copy_from(self._source, self._chunk)
                with self._changed:
                    self._copied += got
                    self._ended = not got
                    self._changed.notify_all()
                if not got:
                    return
                blob.hash_written(buffer)
        except BaseException as exc:  # handed to the reader, which raises it
            with self._changed:
                self._error = exc
                self._changed.notify_all()
