"""Contract versions: the contract file, what schema drift evolved on top of it, and diffs.

A source's *effective* contract is its contract file plus the columns schema drift evolved
(``schema_drift: {columns: evolve}`` adds a nullable column; ``{data_type: evolve}`` widens a
declared column's type). What evolved is kept as a short list of :class:`EvolvedColumn`
entries and applied to the file on every batch, so a person editing the file always wins:

* an added column the file now declares is the file's from then on;
* a widened column whose declared type the file changed is the file's again.

Each distinct effective contract is stored content-addressed (canonical YAML in the artifact
store) and numbered per source by :mod:`gyre.ingest.schema_step`; :func:`column_diff` says
what changed between two versions, column by column.

    effective, kept = apply_evolved(load_contract(path), [EvolvedColumn("note", "string")])
    canonical_yaml(effective)       # the bytes whose content id names this version
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from gyre.ingest.contract import ColumnSpec, Contract
from gyre.ingest.parsing import ColumnType

_BOUNDS = ("min", "max", "exclusive_min", "exclusive_max")
_RULES = (*_BOUNDS, "allowed", "regex")


@dataclass(frozen=True)
class EvolvedColumn:
    """A column schema drift added (``from_type`` None) or widened from ``from_type``."""

    name: str
    type: ColumnType
    from_type: ColumnType | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "from_type": self.from_type}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvolvedColumn:
        return cls(name=data["name"], type=data["type"], from_type=data.get("from_type"))


def widen_spec(spec: ColumnSpec, new_type: ColumnType) -> ColumnSpec:
    """``spec`` with its type widened; rules that cannot apply to text any more are dropped
    (bounds), allowed values become their text."""
    if new_type == spec.type:
        return spec
    update: dict[str, Any] = {"type": new_type}
    if new_type == "string":
        update.update(dict.fromkeys(_BOUNDS))
        if spec.allowed is not None:
            update["allowed"] = tuple(str(v) for v in spec.allowed)
    return spec.model_copy(update=update)


def apply_evolved(
    contract: Contract, evolved: Iterable[EvolvedColumn]
) -> tuple[Contract, tuple[EvolvedColumn, ...]]:
    """The effective contract, and the entries of ``evolved`` that still apply to this file."""
    specs = list(contract.columns)
    index = {spec.name: i for i, spec in enumerate(specs)}
    kept: list[EvolvedColumn] = []
    for entry in evolved:
        at = index.get(entry.name)
        if entry.from_type is None:
            if at is not None:
                continue  # the file declares it now
            index[entry.name] = len(specs)
            specs.append(ColumnSpec(name=entry.name, type=entry.type, nullable=True))
        else:
            if at is None or specs[at].type != entry.from_type:
                continue  # the file dropped or retyped the column
            specs[at] = widen_spec(specs[at], entry.type)
        kept.append(entry)
    if not kept:
        return contract, ()
    return contract.model_copy(update={"columns": tuple(specs)}), tuple(kept)


def merge_evolved(
    existing: Sequence[EvolvedColumn], new: Iterable[EvolvedColumn]
) -> tuple[EvolvedColumn, ...]:
    """``existing`` with ``new`` entries added; a column evolved twice keeps its first origin
    (added, or the type the file declared) and takes the latest type."""
    merged = {entry.name: entry for entry in existing}
    for entry in new:
        before = merged.get(entry.name)
        origin = before.from_type if before is not None else entry.from_type
        merged[entry.name] = EvolvedColumn(entry.name, entry.type, origin)
    return tuple(merged.values())


def contract_document(contract: Contract) -> dict[str, Any]:
    """The contract as plain data, without defaults: what its canonical YAML holds."""
    doc: dict[str, Any] = contract.model_dump(mode="json", exclude_defaults=True)
    return doc


def canonical_yaml(contract: Contract) -> bytes:
    """The contract as deterministic YAML (comments and layout of the file do not count)."""
    text = yaml.safe_dump(
        contract_document(contract),
        sort_keys=False,
        default_flow_style=None,
        allow_unicode=True,
        width=1_000_000,
    )
    return text.encode("utf-8")


def column_summaries(contract: Contract) -> list[dict[str, Any]]:
    """Each column as stored with its version: name, type, nullability and its rules."""
    return [
        spec.model_dump(mode="json", exclude_defaults=True, exclude={"description"})
        | {"type": spec.type, "nullable": spec.nullable}
        for spec in contract.columns
    ]


def column_diff(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What changed between two versions' :func:`column_summaries`, one line per change:
    ``+ note: string, nullable``, ``- station``, ``~ hum: int -> float``, ``~ hr: max 23 -> 24``."""
    old = {c["name"]: c for c in before}
    new = {c["name"]: c for c in after}
    lines: list[str] = []
    for name, col in new.items():
        if name not in old:
            lines.append(f"+ {name}: {_describe(col)}")
            continue
        was = old[name]
        if was["type"] != col["type"]:
            lines.append(f"~ {name}: {was['type']} -> {col['type']}")
        if bool(was.get("nullable")) != bool(col.get("nullable")):
            state = "nullable" if col.get("nullable") else "not nullable"
            lines.append(f"~ {name}: now {state}")
        for rule in _RULES:
            if was.get(rule) != col.get(rule):
                lines.append(f"~ {name}: {rule} {_show(was.get(rule))} -> {_show(col.get(rule))}")
    lines.extend(f"- {name}" for name in old if name not in new)
    return lines


def _describe(col: Mapping[str, Any]) -> str:
    parts = [str(col["type"])]
    if col.get("nullable"):
        parts.append("nullable")
    parts.extend(f"{rule} {_show(col[rule])}" for rule in _RULES if col.get(rule) is not None)
    return ", ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
