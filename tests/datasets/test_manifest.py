"""Dataset manifests: canonical JSON, exact schema round trip, validation, save and load."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from gyre.core.artifacts import ArtifactStore, content_id
from gyre.core.errors import ArtifactError, CorruptArtifactError
from gyre.datasets import DatasetManifest, PartRef, load_manifest, save_manifest, write_table

PART = PartRef(id="b3:" + "ab" * 32, rows=3, size=100)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(str(tmp_path / "objects"))


def tricky_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("at", pa.timestamp("ns", tz="Europe/Zurich")),
            pa.field("day", pa.date32()),
            pa.field("price", pa.decimal128(12, 3)),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("point", pa.struct([("x", pa.float32()), ("y", pa.float32())])),
            pa.field("kind", pa.dictionary(pa.int8(), pa.string())),
            pa.field("naïve", pa.large_string(), metadata={"unit": "none"}),
        ],
        metadata={"source": "unit test"},
    )


def test_schema_round_trips_exactly() -> None:
    schema = tricky_schema()
    manifest = DatasetManifest.build(schema, [PART], parent=None)
    again = DatasetManifest.from_json(manifest.to_json())
    assert again.schema.equals(schema, check_metadata=True)
    assert [c.name for c in again.columns] == schema.names
    assert again.columns[1].type == "timestamp[ns, tz=Europe/Zurich]"
    assert again.columns[0].nullable is False
    assert again.column_names == schema.names


def test_json_is_canonical() -> None:
    manifest = DatasetManifest.build(tricky_schema(), [PART, PART], parent=content_id(b"p"))
    data = manifest.to_json()
    decoded = json.loads(data)
    recanonical = json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert data == recanonical.encode("utf-8")
    assert b"\n" not in data
    assert decoded["row_count"] == 6
    assert decoded["format"] == "gyre.dataset/1"
    assert decoded["parts"][0] == {"id": PART.id, "rows": 3, "size": 100}
    assert DatasetManifest.build(tricky_schema(), [PART, PART], content_id(b"p")) == manifest
    assert manifest.content_id() == content_id(data)


def test_save_and_load(store: ArtifactStore) -> None:
    table = pa.table({"x": [1, 2, 3], "price": pa.array([Decimal("1.50"), None, Decimal("2")])})
    manifest = write_table(store, table)
    cid = save_manifest(store, manifest)
    assert cid == manifest.content_id()
    assert store.get_bytes(cid) == manifest.to_json()
    loaded = load_manifest(store, cid)
    assert loaded == manifest
    assert loaded.schema.equals(table.schema)
    assert save_manifest(store, loaded) == cid


def test_manifest_ids_differ_when_anything_differs() -> None:
    base = DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART], parent=None)
    variants = [
        DatasetManifest.build(pa.schema([("x", pa.int32())]), [PART], parent=None),
        DatasetManifest.build(pa.schema([("y", pa.int64())]), [PART], parent=None),
        DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART, PART], parent=None),
        DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART], parent=base.content_id()),
    ]
    ids = {base.content_id(), *(m.content_id() for m in variants)}
    assert len(ids) == 5


def test_row_count_must_add_up() -> None:
    good = DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART], parent=None)
    data = good.model_dump()
    data["row_count"] = 4
    with pytest.raises(ValidationError, match="row_count is 4 but the parts hold 3 rows"):
        DatasetManifest.model_validate(data)


@pytest.mark.parametrize("bad", ["b3:xyz", "ab" * 32, "b3:" + "AB" * 32])
def test_part_and_parent_ids_are_validated(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a content id"):
        PartRef(id=bad, rows=1, size=1)
    with pytest.raises(ValidationError, match="not a content id"):
        DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART], parent=bad)


def test_manifest_is_frozen_and_strict() -> None:
    manifest = DatasetManifest.build(pa.schema([("x", pa.int64())]), [PART], parent=None)
    with pytest.raises(ValidationError):
        manifest.row_count = 10  # type: ignore[misc]
    data = manifest.model_dump()
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        DatasetManifest.model_validate(data)
    with pytest.raises(ValidationError):
        PartRef(id=PART.id, rows=-1, size=0)


def test_loading_something_that_is_not_a_manifest(store: ArtifactStore) -> None:
    cid = store.put_bytes(b'{"hello": "world"}')
    with pytest.raises(ArtifactError, match=f"artifact {cid} is not a valid dataset manifest"):
        load_manifest(store, cid)
    cid = store.put_bytes(b"\x00\x01 not json")
    with pytest.raises(ArtifactError, match="not a valid dataset manifest") as info:
        load_manifest(store, cid)
    assert info.value.hint


def test_loading_a_corrupt_manifest(store: ArtifactStore) -> None:
    manifest = write_table(store, pa.table({"x": [1]}))
    cid = save_manifest(store, manifest)
    Path(store.path_of(cid)).write_bytes(
        manifest.to_json().replace(b'"row_count":1', b'"row_count":2')
    )
    with pytest.raises(CorruptArtifactError):
        load_manifest(store, cid)
