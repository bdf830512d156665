"""The manifest of a dataset version: which Parquet parts hold its rows, and their schema.

A dataset version is immutable and content-addressed. Its rows live in Parquet *parts*, each one
blob in the :class:`~gyre.core.artifacts.ArtifactStore`; the manifest lists the parts in order,
the Arrow schema and the row count, and is itself stored as canonical JSON (sorted keys, no
whitespace). The manifest's content id is the dataset version's content id, so the same rows
written the same way always get the same id, and a version can never change under its id.

    manifest = write_table(store, table)        # gyre.datasets.writer
    version_id = save_manifest(store, manifest)
    assert load_manifest(store, version_id) == manifest

The schema is kept twice: as a readable list of columns (for humans, the CLI and diffs) and as the
Arrow IPC encoding in base64, because type strings such as ``timestamp[ns, tz=UTC]`` cannot be
parsed back into Arrow types exactly. pyarrow is imported only when the schema is decoded, so
code that only passes manifests around stays light.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from gyre.core.artifacts import ArtifactStore, content_id, is_content_id
from gyre.core.errors import ArtifactError

if TYPE_CHECKING:
    import pyarrow as pa


def _check_id(value: str) -> str:
    if not is_content_id(value):
        raise ValueError(f"'{value}' is not a content id (b3:<64 lower-case hex digits>)")
    return value


ContentId = Annotated[str, AfterValidator(_check_id)]


class PartRef(BaseModel):
    """One Parquet part of a dataset version: its blob id, rows and size in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ContentId
    rows: int = Field(ge=0)
    size: int = Field(ge=0, description="size of the Parquet blob in bytes")


class ColumnInfo(BaseModel):
    """One column as people read it: name, Arrow type string and nullability."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str
    nullable: bool


class DatasetManifest(BaseModel):
    """What a dataset version is made of. Build one with :meth:`build` or the writer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["gyre.dataset/1"] = "gyre.dataset/1"
    parts: tuple[PartRef, ...]
    columns: tuple[ColumnInfo, ...]
    arrow_schema: str = Field(description="the Arrow schema, IPC-serialised, base64")
    row_count: int = Field(ge=0)
    parent: ContentId | None = Field(default=None, description="the manifest id this extends")

    @model_validator(mode="after")
    def _rows_add_up(self) -> DatasetManifest:
        total = sum(part.rows for part in self.parts)
        if total != self.row_count:
            raise ValueError(f"row_count is {self.row_count} but the parts hold {total} rows")
        return self

    @classmethod
    def build(
        cls, schema: pa.Schema, parts: tuple[PartRef, ...] | list[PartRef], parent: str | None
    ) -> DatasetManifest:
        """A manifest for ``parts`` written with ``schema``; ``row_count`` is their sum."""
        columns = tuple(
            ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema
        )
        encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
        return cls(
            parts=tuple(parts),
            columns=columns,
            arrow_schema=encoded,
            row_count=sum(part.rows for part in parts),
            parent=parent,
        )

    @property
    def schema(self) -> pa.Schema:
        """The exact Arrow schema of every part (types, nullability and metadata)."""
        import pyarrow as pa

        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.arrow_schema)))

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def to_json(self) -> bytes:
        """Canonical JSON: sorted keys, no whitespace, UTF-8. Equal manifests give equal bytes."""
        return canonical_json(self.model_dump(mode="json"))

    def content_id(self) -> str:
        """The id this manifest gets in the artifact store: the dataset version's id."""
        return content_id(self.to_json())

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "the manifest") -> DatasetManifest:
        """Parse canonical (or any) JSON; raise :class:`ArtifactError` naming ``where``."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ArtifactError(
                f"{where} is not a valid dataset manifest: {loc}: {first['msg']}",
                hint="pass the id of a dataset version, as printed by `gyre datasets list`",
            ) from None


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON bytes (sorted keys, no whitespace, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def save_manifest(artifacts: ArtifactStore, manifest: DatasetManifest) -> str:
    """Store ``manifest`` and return its content id, which names the dataset version."""
    return artifacts.put_bytes(manifest.to_json())


def load_manifest(artifacts: ArtifactStore, cid: str) -> DatasetManifest:
    """The manifest stored under ``cid`` (verified against its hash)."""
    return DatasetManifest.from_json(artifacts.get_bytes(cid), where=f"artifact {cid}")
