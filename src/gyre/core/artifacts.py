"""Content-addressed artifact store over fsspec.

Every blob is named by the BLAKE3 hash of its bytes (``b3:<64 hex>``) and stored under
``<root>/<first two hex>/<rest>``. Writing the same bytes twice stores them once. Writes go to a
temporary name and are renamed into place, so a crash never leaves a half-written blob under a
real id; reads re-hash the bytes and raise :class:`CorruptArtifactError` on a mismatch.

    store = ArtifactStore.from_url("file:///tmp/objects")   # or s3://bucket/prefix
    cid = store.put_bytes(b"hello")
    assert store.get_bytes(cid) == b"hello"

The backend is chosen by URL scheme; ``s3://`` needs the ``s3`` extra (s3fs). Object stores
have no rename, but a single PUT is atomic there, so the same code is safe on both.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import blake3

from gyre.core.errors import ArtifactError, CorruptArtifactError, MissingExtraError

PREFIX = "b3:"
_CHUNK = 1 << 20
_COPY_CHUNK = 1 << 26  # bytes per kernel copy: big, but each call can be interrupted
# int(x, 16) alone accepts "0x", "_", signs, whitespace and upper case, which would map one blob
# to several paths (or to paths that are not blobs at all), so ids are matched exactly.
_DIGEST = re.compile(r"[0-9a-f]{64}")


def content_id(data: bytes) -> str:
    """The content id of ``data``: ``b3:`` followed by its BLAKE3 hex digest."""
    return PREFIX + blake3.blake3(data).hexdigest()


def is_content_id(value: str) -> bool:
    """Whether ``value`` is a well-formed content id (``b3:`` and 64 lower-case hex digits)."""
    return value.startswith(PREFIX) and bool(_DIGEST.fullmatch(value[len(PREFIX) :]))


def _digest_of(cid: str) -> str:
    if not cid.startswith(PREFIX) or len(cid) != len(PREFIX) + 64:
        raise ArtifactError(
            f"'{cid}' is not a content id",
            hint="content ids look like b3:<64 hex digits>, as printed by `gyre datasets show`",
        )
    digest = cid[len(PREFIX) :]
    if not _DIGEST.fullmatch(digest):
        raise ArtifactError(
            f"'{cid}' is not a content id (not 64 lower-case hexadecimal digits)",
            hint="content ids look like b3:<64 hex digits>, as printed by `gyre datasets show`",
        )
    return digest


def _hash_file(path: Path | str) -> str:
    # Memory-mapped and on every core: a local file is hashed where it lies, with no copy into
    # Python (884 MB: 0.1 s, against 0.7 s read in chunks). Its pages count as the process's
    # memory while mapped, so writing (BlobWriter) hashes as it goes instead.
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(path)
    return str(hasher.hexdigest())


class ArtifactStore:
    """Immutable blobs keyed by their BLAKE3 hash, on any fsspec filesystem."""

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self._local = getattr(fs, "protocol", None) in ("file", ("file", "local"))

    @property
    def is_local(self) -> bool:
        """True when blobs are plain local files, so :meth:`path_of` can be handed to any tool."""
        return self._local

    @classmethod
    def from_url(cls, url: str, **storage_options: Any) -> ArtifactStore:
        """Open the store at ``url`` (a local path, ``file://``, ``s3://``, ``memory://``...)."""
        import fsspec

        scheme = url.split("://", 1)[0] if "://" in url else "file"
        if scheme == "file":
            # fsspec keeps percent-escapes of file:// URLs verbatim, so a folder with a space
            # would silently become a second folder named "my%20dir"; decode paths ourselves.
            from fsspec.implementations.local import LocalFileSystem

            local = Path(unquote(urlsplit(url).path)) if "://" in url else Path(url)
            local = local.expanduser().resolve()
            local_fs = LocalFileSystem(**storage_options)
            local_fs.makedirs(local.as_posix(), exist_ok=True)
            return cls(local_fs, local.as_posix(), local.as_uri())
        if scheme in ("s3", "s3a"):
            try:
                import s3fs  # noqa: F401
            except ImportError:
                raise MissingExtraError("s3fs", "s3", f"The artifact store at {url}") from None
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        return cls(fs, root, url)

    def _path(self, digest: str) -> str:
        return f"{self.root}/{digest[:2]}/{digest[2:]}"

    def path_of(self, cid: str) -> str:
        """The backend path of a blob (for tools that read it directly, such as DuckDB)."""
        return self._path(_digest_of(cid))

    def exists(self, cid: str) -> bool:
        return bool(self.fs.exists(self._path(_digest_of(cid))))

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its content id. Idempotent and atomic.

        A blob already present is kept only if it still holds these bytes: writing the same
        content again repairs a corrupted copy, which is what an error's "re-run the step that
        produced it" relies on.
        """
        cid = content_id(data)
        path = self._path(_digest_of(cid))
        if self.fs.exists(path) and self._intact(path, len(data), cid):
            return cid
        if self._local:
            self._write_local_atomically(path, data)
        else:
            # One PUT is atomic on object stores: readers see all of it or nothing.
            self.fs.pipe_file(path, data)
        return cid

    def _intact(self, path: str, size: int, cid: str) -> bool:
        try:
            if self.fs.size(path) != size:
                return False
            return content_id(self.fs.cat_file(path)) == cid
        except FileNotFoundError:
            return False

    def put_file(self, source: str | os.PathLike[str]) -> str:
        """Store a local file's bytes, hashing it in chunks so big files need little memory."""
        if not Path(source).is_file():
            raise ArtifactError(
                f"cannot store {source}: it is not a readable file",
                hint="pass the path of an existing file",
            )
        if self._local:
            return self._put_local_file(Path(source))
        cid = PREFIX + _hash_file(Path(source))
        path = self._path(_digest_of(cid))
        if not self.fs.exists(path):
            self.fs.put_file(str(source), path)
        return cid

    def _put_local_file(self, source: Path) -> str:
        # Copy, then name the copy by the hash of what was actually copied: hashing the source
        # first would store a mislabelled blob if the file changed in between.
        with self.writer() as blob, source.open("rb") as src:
            while blob.copy_from(src.fileno(), _COPY_CHUNK):
                pass
            return blob.finish()

    def writer(self) -> BlobWriter:
        """A blob written in pieces (``write``), stored and named by its hash at ``finish``.

        For bytes that pass through once, such as a big file read block by block: they are
        hashed and copied as they go, and stored under the hash of exactly what was written.
        """
        return BlobWriter(self)

    def get_bytes(self, cid: str) -> bytes:
        """Read a blob and verify it still hashes to ``cid``."""
        path = self._path(_digest_of(cid))
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactError(
                f"artifact {cid} is missing from {self.url}",
                hint="the object store was changed outside Gyre; restore it from a backup",
            ) from None
        actual = content_id(data)
        if actual != cid:
            raise CorruptArtifactError(
                f"artifact {cid} at {self._where(path)} is corrupt: its bytes hash to {actual}",
                hint="restore the file from a backup or re-run the step that produced it",
            )
        return data

    def open(self, cid: str) -> IO[bytes]:
        """Open a verified blob for reading (verification reads it once in chunks)."""
        self.verify(cid)
        fh: IO[bytes] = self.fs.open(self._path(_digest_of(cid)), "rb")
        return fh

    def verify(self, cid: str) -> None:
        """Re-hash a blob in chunks; raise :class:`CorruptArtifactError` if it changed."""
        path = self._path(_digest_of(cid))
        try:
            digest = _hash_file(path) if self._local else self._hash_remote(path)
        except FileNotFoundError:
            raise ArtifactError(f"artifact {cid} is missing from {self.url}") from None
        if PREFIX + digest != cid:
            raise CorruptArtifactError(
                f"artifact {cid} at {self._where(path)} is corrupt: "
                "its bytes no longer match their hash",
                hint="restore the file from a backup or re-run the step that produced it",
            )

    def _hash_remote(self, path: str) -> str:
        hasher = blake3.blake3()
        with self.fs.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                hasher.update(chunk)
        return str(hasher.hexdigest())

    def iter_ids(self) -> Iterator[str]:
        """Every content id in the store (for garbage collection and audits)."""
        for path in self.fs.find(self.root):
            parts = str(path).rstrip("/").split("/")
            if len(parts) >= 2 and len(parts[-2]) == 2 and len(parts[-1]) == 62:
                yield PREFIX + parts[-2] + parts[-1]

    def _where(self, path: str) -> str:
        """A path as a user would type it: plain for local files, with its scheme otherwise."""
        return path if self._local else str(self.fs.unstrip_protocol(path))

    def _temp_name(self, path: str) -> str:
        return f"{path}.tmp-{uuid.uuid4().hex}"

    def _write_local_atomically(self, path: str, data: bytes) -> None:
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = self._temp_name(path)
        try:
            with Path(tmp).open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(path)
        finally:
            Path(tmp).unlink(missing_ok=True)


class BlobWriter:
    """A blob written piece by piece (see :meth:`ArtifactStore.writer`); use as a context
    manager so an abandoned write leaves no temporary file behind.

    The pieces come from :meth:`write`, from :meth:`copy_from` (a file copied in the kernel,
    never through Python), or from another writer that writes :attr:`path` itself (Parquet).
    The hash is always of the stored bytes: those written are hashed as they pass, the others
    are read back by :meth:`hash_written` or, what is left, by :meth:`finish`.

    Writing, copying and hashing belong to one thread at a time; :meth:`read_into` and
    :meth:`write_back` may be called from another meanwhile (they read, or advise the kernel,
    by offset, and change nothing here).
    """

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store
        incoming = f"{store.root}/incoming" if store.is_local else tempfile.gettempdir()
        if store.is_local:
            store.fs.makedirs(incoming, exist_ok=True)
        self._tmp = Path(store._temp_name(f"{incoming}/blob"))
        # Unbuffered, so writes, kernel copies and reads back all go through the one offset.
        self._fh: IO[bytes] | None = self._tmp.open("w+b", buffering=0)
        self._copy_in_kernel = hasattr(os, "copy_file_range")
        self._hasher = blake3.blake3()
        self._size = 0  # bytes written or copied through this writer
        self._hashed = 0  # the first so many bytes of the file are in the hash

    @property
    def path(self) -> Path:
        """The temporary file being written: for a writer that opens it by name, which must be
        closed before :meth:`finish`."""
        return self._tmp

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fh is not None, "write after finish"
        view = memoryview(data)
        if self._hashed == self._size:
            self._hasher.update(view)
            self._hashed += len(view)
        self._size += len(view)
        while view:
            view = view[self._fh.write(view) or 0 :]

    def copy_from(self, source: int, limit: int) -> int:
        """Append up to ``limit`` bytes read from the open file descriptor ``source`` (from its
        current offset); returns how many, 0 at its end. The kernel copies them
        (``copy_file_range``) where it can, so they never pass through Python."""
        assert self._fh is not None, "copy after finish"
        if self._copy_in_kernel:
            try:
                copied = os.copy_file_range(source, self._fh.fileno(), limit)
            except OSError:
                # Not across these filesystems, or not for this kind of file: copy in Python.
                self._copy_in_kernel = False
            else:
                if copied:
                    self._size += copied
                    return copied
                # 0 is the end of a regular file, but some filesystems (proc, some FUSE) answer
                # 0 for files they cannot copy in the kernel: let a plain read say which it is.
                self._copy_in_kernel = False
        data = os.read(source, limit)
        self.write(data)
        return len(data)

    def read_into(self, offset: int, buffer: bytearray) -> int:
        """Fill ``buffer`` with what was written so far, from ``offset``; returns how many bytes
        it got (fewer than its length at the end)."""
        assert self._fh is not None, "read after finish"
        return os.preadv(self._fh.fileno(), [buffer], offset)

    def hash_written(self, buffer: bytearray) -> None:
        """Hash the bytes stored so far that are not hashed yet, read back through ``buffer``
        (copied ones, just after their copy: they are still in the page cache)."""
        assert self._fh is not None, "hash after finish"
        self._hash_rest(self._fh.fileno(), buffer)

    def write_back(self, offset: int, size: int) -> None:
        """Have the kernel start writing these stored bytes to disk now, without waiting for
        it: the sync at :meth:`finish` then finds little left to write. (A kernel copy of a
        1 GB file left it all in memory until that sync, 1.8 s of waiting at the end of the
        ingest, during which the parts' own syncs queued behind it.)"""
        assert self._fh is not None, "write back after finish"
        if hasattr(os, "posix_fadvise"):
            # DONTNEED starts the write-back of dirty pages and leaves them cached: only clean
            # pages are dropped, and these were read already.
            os.posix_fadvise(self._fh.fileno(), offset, size, os.POSIX_FADV_DONTNEED)

    def finish(self) -> str:
        """Store what was written; returns its content id."""
        assert self._fh is not None, "finish twice"
        fh, self._fh = self._fh, None
        try:
            os.fsync(fh.fileno())
            self._hash_rest(fh.fileno())
        finally:
            fh.close()
        cid = PREFIX + self._hasher.hexdigest()
        store = self._store
        path = store._path(_digest_of(cid))
        if store.is_local:
            if not store.fs.exists(path):
                store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self._tmp.replace(path)
        elif not store.fs.exists(path):
            store.fs.put_file(str(self._tmp), path)
        self._tmp.unlink(missing_ok=True)
        return cid

    def _hash_rest(self, fd: int, buffer: bytearray | None = None) -> None:
        """Hash the stored bytes not hashed yet: read back in chunks, never mapped whole (a
        mapped file counts in full against the process's memory)."""
        size = os.fstat(fd).st_size
        if self._hashed >= size:
            return
        buffer = buffer if buffer is not None else bytearray(_CHUNK * 8)
        while self._hashed < size:
            got = os.preadv(fd, [buffer], self._hashed)
            if not got:
                break
            self._hasher.update(memoryview(buffer)[:got])
            self._hashed += got
