"""The content-addressed artifact store, on local disk and on a real S3 API (moto server)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest

from gyre.core.artifacts import ArtifactStore, content_id, is_content_id
from gyre.core.errors import ArtifactError, CorruptArtifactError, GyreError

HELLO_ID = "b3:" + blake3.blake3(b"hello").hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(str(tmp_path / "objects"))


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- local ---------------------------------------------------------------------------------


def test_content_id_is_blake3_of_the_bytes() -> None:
    assert content_id(b"hello") == HELLO_ID
    assert is_content_id(HELLO_ID)


def test_round_trip(store: ArtifactStore) -> None:
    payloads = [b"", b"hello", bytes(range(256)) * 1000]
    ids = [store.put_bytes(data) for data in payloads]
    assert ids[1] == HELLO_ID
    for cid, data in zip(ids, payloads, strict=True):
        assert store.exists(cid)
        assert store.get_bytes(cid) == data
        with store.open(cid) as fh:
            assert fh.read() == data
        store.verify(cid)
    assert sorted(store.iter_ids()) == sorted(ids)


def test_blob_is_stored_under_its_digest(store: ArtifactStore, tmp_path: Path) -> None:
    cid = store.put_bytes(b"hello")
    digest = cid[3:]
    expected = tmp_path / "objects" / digest[:2] / digest[2:]
    assert Path(store.path_of(cid)) == expected
    assert expected.read_bytes() == b"hello"


def test_put_is_idempotent(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put_bytes(b"same bytes")
    blob = Path(store.path_of(first))
    mtime = blob.stat().st_mtime_ns
    assert store.put_bytes(b"same bytes") == first
    assert blob.stat().st_mtime_ns == mtime, "an existing blob must not be rewritten"
    source = tmp_path / "same.bin"
    source.write_bytes(b"same bytes")
    assert store.put_file(source) == first
    assert files_under(tmp_path / "objects") == [blob]


def test_put_file_of_a_large_file(store: ArtifactStore, tmp_path: Path) -> None:
    # Not a multiple of the 1 MiB chunk, so the last partial chunk is exercised too.
    data = os.urandom(9 * (1 << 20) + 12345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    cid = store.put_file(source)
    assert cid == content_id(data)
    assert Path(store.path_of(cid)).read_bytes() == data
    assert store.get_bytes(cid) == data
    store.verify(cid)
    assert source.read_bytes() == data, "the source file is left as it was"


def test_put_file_of_a_missing_file_is_an_artifact_error(
    store: ArtifactStore, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactError, match=r"nope\.bin"):
        store.put_file(tmp_path / "nope.bin")
    with pytest.raises(ArtifactError, match="not a readable file"):
        store.put_file(tmp_path)


def test_flipped_byte_is_detected(store: ArtifactStore) -> None:
    data = b"precious training data " * 100
    cid = store.put_bytes(data)
    blob = Path(store.path_of(cid))
    damaged = bytearray(blob.read_bytes())
    damaged[17] ^= 0x01
    blob.write_bytes(bytes(damaged))

    with pytest.raises(CorruptArtifactError) as info:
        store.get_bytes(cid)
    assert str(blob) in str(info.value)
    assert cid in str(info.value)
    assert info.value.hint
    with pytest.raises(CorruptArtifactError, match=str(blob)):
        store.verify(cid)
    with pytest.raises(CorruptArtifactError):
        store.open(cid)


def test_truncated_blob_is_detected(store: ArtifactStore) -> None:
    cid = store.put_bytes(b"0123456789")
    Path(store.path_of(cid)).write_bytes(b"01234")
    with pytest.raises(CorruptArtifactError):
        store.get_bytes(cid)


def test_missing_blob_is_an_artifact_error(store: ArtifactStore) -> None:
    cid = store.put_bytes(b"soon gone")
    Path(store.path_of(cid)).unlink()
    assert not store.exists(cid)
    for read in (store.get_bytes, store.verify, store.open):
        with pytest.raises(ArtifactError, match="missing") as info:
            read(cid)
        assert not isinstance(info.value, CorruptArtifactError)
        assert cid in str(info.value)


def test_unknown_id_is_missing(store: ArtifactStore) -> None:
    cid = "b3:" + "0" * 64
    assert not store.exists(cid)
    with pytest.raises(ArtifactError, match="missing"):
        store.get_bytes(cid)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "b3:",
        "hello",
        HELLO_ID[3:],  # digest without the prefix
        "sha256:" + HELLO_ID[3:],
        HELLO_ID[:-1],  # too short
        HELLO_ID + "0",  # too long
        "b3:" + HELLO_ID[3:].upper(),  # would name a second path for the same blob
        "b3:" + "g" * 64,
        "b3:0x" + HELLO_ID[5:],  # int(.., 16) accepts these four, the store must not
        "b3:" + HELLO_ID[3:34] + "_" + HELLO_ID[35:],
        "b3: " + HELLO_ID[4:],
        "b3:-" + HELLO_ID[4:],
        "b3:../../" + "a" * 58,
    ],
)
def test_invalid_ids_are_refused(store: ArtifactStore, bad: str) -> None:
    store.put_bytes(b"hello")
    assert not is_content_id(bad)
    for call in (store.get_bytes, store.exists, store.path_of, store.verify, store.open):
        with pytest.raises(ArtifactError, match="not a content id") as info:
            call(bad)
        assert info.value.hint


def test_no_temporary_files_are_left_behind(store: ArtifactStore, tmp_path: Path) -> None:
    ids = {store.put_bytes(str(i).encode()) for i in range(20)}
    for i in range(3):
        source = tmp_path / f"file{i}.bin"
        source.write_bytes(os.urandom(100_000 + i))
        ids.add(store.put_file(source))
        ids.add(store.put_file(source))
    root = tmp_path / "objects"
    blobs = files_under(root)
    assert not [p for p in blobs if ".tmp" in p.name]
    assert sorted(f"b3:{p.parent.name}{p.name}" for p in blobs) == sorted(ids)
    assert sorted(store.iter_ids()) == sorted(ids)


def test_failed_write_leaves_no_temporary_file(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, target: Any) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes(b"never stored")
    source = tmp_path / "x.bin"
    source.write_bytes(b"never stored either")
    with pytest.raises(OSError, match="disk full"):
        store.put_file(source)
    assert files_under(tmp_path / "objects") == []


def test_paths_with_spaces_and_file_urls_name_the_same_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my objects"
    by_path = ArtifactStore.from_url(str(folder))
    by_url = ArtifactStore.from_url(folder.as_uri())  # file:///.../my%20objects
    cid = by_path.put_bytes(b"shared")
    assert by_url.get_bytes(cid) == b"shared"
    assert Path(by_url.path_of(cid)).is_relative_to(folder)
    assert by_path.is_local and by_url.is_local
    assert not (tmp_path / "my%20objects").exists()


def test_relative_paths_are_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore.from_url(".gyre/objects")
    cid = store.put_bytes(b"x")
    assert (tmp_path / ".gyre" / "objects" / cid[3:5] / cid[5:]).is_file()
    assert store.url == (tmp_path / ".gyre" / "objects").as_uri()


def test_memory_store_is_not_local() -> None:
    store = ArtifactStore.from_url("memory://gyre-test-artifacts")
    cid = store.put_bytes(b"in memory")
    assert store.get_bytes(cid) == b"in memory"
    assert not store.is_local


def _put_many(root: str, data: bytes, barrier: Any, rounds: int) -> list[str]:
    store = ArtifactStore.from_url(root)
    barrier.wait()
    return [store.put_bytes(data) for _ in range(rounds)]


def test_concurrent_puts_of_the_same_bytes_from_several_processes(tmp_path: Path) -> None:
    root = str(tmp_path / "objects")
    data = os.urandom(4 << 20)
    workers = 4
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers)
        with ctx.Pool(workers) as pool:
            results = pool.starmap(_put_many, [(root, data, barrier, 5)] * workers)
    expected = content_id(data)
    assert [cid for ids in results for cid in ids] == [expected] * (workers * 5)
    store = ArtifactStore.from_url(root)
    assert store.get_bytes(expected) == data
    assert files_under(tmp_path / "objects") == [Path(store.path_of(expected))]


def test_errors_are_gyre_errors() -> None:
    assert issubclass(CorruptArtifactError, ArtifactError)
    assert issubclass(ArtifactError, GyreError)


# --- S3 (a real S3 API: moto's server on loopback) ------------------------------------------

BUCKET = "gyre-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def s3_store(s3_endpoint: str, request: pytest.FixtureRequest) -> ArtifactStore:
    # A prefix per test keeps tests independent inside the one bucket.
    prefix = request.node.name.replace("[", "-").replace("]", "")
    return ArtifactStore.from_url(
        f"s3://{BUCKET}/{prefix}",
        key="testing",
        secret="testing",
        endpoint_url=s3_endpoint,
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
    )


def _key_of(store: ArtifactStore, cid: str) -> str:
    path = store.path_of(cid)
    assert path.startswith(f"{BUCKET}/")
    return path[len(BUCKET) + 1 :]


def test_s3_round_trip(s3_store: ArtifactStore, s3_client: Any, tmp_path: Path) -> None:
    assert not s3_store.is_local
    data = os.urandom(200_000)
    cid = s3_store.put_bytes(data)
    assert cid == content_id(data)
    assert s3_store.exists(cid)
    assert s3_store.get_bytes(cid) == data
    with s3_store.open(cid) as fh:
        assert fh.read() == data
    # The object really is in the bucket, under the content-addressed key.
    body = s3_client.get_object(Bucket=BUCKET, Key=_key_of(s3_store, cid))["Body"].read()
    assert body == data

    assert s3_store.put_bytes(data) == cid
    source = tmp_path / "upload.bin"
    source.write_bytes(os.urandom(3 * (1 << 20) + 7))
    file_id = s3_store.put_file(source)
    assert s3_store.get_bytes(file_id) == source.read_bytes()
    assert sorted(s3_store.iter_ids()) == sorted([cid, file_id])


def test_s3_overwritten_object_is_detected(s3_store: ArtifactStore, s3_client: Any) -> None:
    cid = s3_store.put_bytes(b"model weights, trust me")
    s3_client.put_object(Bucket=BUCKET, Key=_key_of(s3_store, cid), Body=b"tampered")
    with pytest.raises(CorruptArtifactError) as info:
        s3_store.get_bytes(cid)
    assert f"s3://{s3_store.path_of(cid)}" in str(info.value)
    with pytest.raises(CorruptArtifactError):
        s3_store.verify(cid)


def test_s3_missing_object_is_an_artifact_error(s3_store: ArtifactStore, s3_client: Any) -> None:
    cid = s3_store.put_bytes(b"soon gone")
    s3_client.delete_object(Bucket=BUCKET, Key=_key_of(s3_store, cid))
    s3_store.fs.invalidate_cache()
    assert not s3_store.exists(cid)
    with pytest.raises(ArtifactError, match="missing") as info:
        s3_store.get_bytes(cid)
    assert not isinstance(info.value, CorruptArtifactError)


def test_writing_the_same_bytes_again_repairs_a_corrupt_blob(tmp_path: Path) -> None:
    store = ArtifactStore.from_url(str(tmp_path / "objects"))
    cid = store.put_bytes(b"the same content")
    blob = Path(store.path_of(cid))
    blob.write_bytes(b"the same c0ntent")
    with pytest.raises(CorruptArtifactError):
        store.get_bytes(cid)
    assert store.put_bytes(b"the same content") == cid
    assert store.get_bytes(cid) == b"the same content"


def test_a_blob_copied_from_a_descriptor_is_the_source_whatever_the_kernel_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore.from_url(f"file://{tmp_path}/objects")
    data = bytes(range(256)) * 5000
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    # The kernel copies it; a pipe it cannot copy; a filesystem whose kernel copy says 0 bytes.
    for case in ("kernel", "pipe", "zero"):
        with store.writer() as blob:
            if case == "pipe":
                read_end, write_end = os.pipe()
                with os.fdopen(write_end, "wb") as sink:
                    sink.write(data[:60000])  # fits the pipe's buffer
                with os.fdopen(read_end, "rb", buffering=0) as fh:
                    while blob.copy_from(fh.fileno(), 4096):
                        pass
                expected = data[:60000]
            else:
                if case == "zero":
                    monkeypatch.setattr(os, "copy_file_range", lambda *_: 0)
                with source.open("rb", buffering=0) as fh:
                    while blob.copy_from(fh.fileno(), 100_000):
                        pass
                expected = data
            cid = blob.finish()
        assert cid == content_id(expected), case
        assert store.get_bytes(cid) == expected


def test_a_blob_hashes_what_was_read_back_and_what_another_writer_wrote(tmp_path: Path) -> None:
    store = ArtifactStore.from_url(f"file://{tmp_path}/objects")
    with store.writer() as blob:
        blob.write(b"abc")
        buffer = bytearray(2)
        assert blob.read_into(1, buffer) == 2 and buffer == b"bc"
        blob.write(b"def")
        assert blob.finish() == content_id(b"abcdef")
    with store.writer() as blob:
        blob.path.write_bytes(b"written by name")  # as the Parquet writer writes a part
        assert blob.finish() == content_id(b"written by name")
