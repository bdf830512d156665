"""The ingest benchmark's input: a seeded 20-column orders CSV with planted bad rows, its contract.

Every tool in ``bench/ingest.py`` reads the same file, so it is generated once per
(rows, seed, generator version) and cached under ``.bench/data/``; a rerun reuses it. About 1% of
the rows carry exactly one planted defect each, so the number of rows a correct validator must
refuse is known in advance (``planted_bad`` in the metadata file next to the CSV):

=================  ==============================================================================
kind               what is planted (one column per row)
=================  ==============================================================================
out_of_range       quantity 1000-9999 (max 999), discount 1.5-3 (max 1), latitude 91-180
unparsable_number  unit_price ``12.5x`` / ``N/A``, quantity ``seven``
not_allowed        status ``lost``, country ``XX``, channel ``fax``
missing_required   empty customer_name, customer_id or created_at
bad_datetime       created_at in month 13, birth_date 30 February
bad_bool           is_member ``maybe``
ragged             a row with one field too few or one too many
=================  ==============================================================================

Columns are built with numpy and pyarrow and joined into lines by Arrow, so 5M rows take seconds.
Some notes are quoted and contain commas, as exports do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GENERATOR_VERSION = 1
CHUNK_ROWS = 250_000
BAD_SHARE = 0.01

COUNTRIES = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO",
    "DK", "FI", "PL", "PT", "IE", "AT", "CH", "CA", "AU", "JP",
)  # fmt: skip
STATUSES = ("new", "paid", "shipped", "delivered", "returned", "cancelled")
CHANNELS = ("web", "store", "phone", "partner")
FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Katherine",
         "Linus", "Margaret", "Niklaus", "Radia", "Tim", "Ken", "Dennis")  # fmt: skip
LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
        "Johnson", "Torvalds", "Hamilton", "Wirth", "Perlman", "Lee", "Thompson",
        "Ritchie")  # fmt: skip
NOTES = ("fragile", "leave at reception", "call before delivery", "gift", "express")
QUOTED_NOTES = ('"left at door, ring bell"', '"deliver after 6pm, not before"',
                '"box damaged, customer informed"')  # fmt: skip
CATEGORIES = tuple(f"cat_{i:03d}" for i in range(200))

# (name, contract column) in file order; the contract YAML and the peers' schemas derive from it.
COLUMNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("order_id", {"type": "int", "min": 1}),
    ("customer_id", {"type": "int", "min": 1, "max": 9_999_999}),
    ("quantity", {"type": "int", "min": 1, "max": 999}),
    ("unit_price", {"type": "float", "min": 0, "max": 100_000}),
    ("discount", {"type": "float", "min": 0, "max": 1}),
    ("score", {"type": "float", "nullable": True}),
    ("latitude", {"type": "float", "min": -90, "max": 90}),
    ("longitude", {"type": "float", "min": -180, "max": 180}),
    ("customer_name", {"type": "string"}),
    ("email", {"type": "string", "regex": r"[a-z0-9._]+@[a-z0-9.-]+\.[a-z]{2,}"}),
    ("country", {"type": "string", "allowed": list(COUNTRIES)}),
    ("status", {"type": "string", "allowed": list(STATUSES)}),
    ("channel", {"type": "string", "allowed": list(CHANNELS)}),
    ("category", {"type": "string", "nullable": True}),
    ("created_at", {"type": "timestamp"}),
    ("ship_date", {"type": "date", "nullable": True}),
    ("birth_date", {"type": "date", "min": "1920-01-01", "max": "2008-12-31"}),
    ("is_member", {"type": "bool"}),
    ("gift_wrap", {"type": "bool", "nullable": True}),
    ("notes", {"type": "string", "nullable": True}),
)
NAMES = tuple(name for name, _ in COLUMNS)
PRIMARY_KEY = ("order_id",)

KINDS = (
    "out_of_range",
    "unparsable_number",
    "not_allowed",
    "missing_required",
    "bad_datetime",
    "bad_bool",
    "ragged",
)
_KIND_WEIGHTS = np.array([0.2, 0.2, 0.2, 0.15, 0.1, 0.1, 0.05])


@dataclass(frozen=True)
class BenchData:
    csv: Path
    contract: Path
    rows: int
    """Data rows in the file (the header not counted), ragged ones included."""
    planted_bad: int
    by_kind: dict[str, int]
    size_bytes: int


def ensure_data(root: Path, rows: int, seed: int) -> BenchData:
    """The cached CSV and contract for ``rows`` and ``seed``; generated on the first call."""
    folder = root / "data"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"orders-{rows}-s{seed}-v{GENERATOR_VERSION}"
    csv_path, meta_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    contract_path = folder / "orders.contract.yaml"
    write_contract(contract_path)
    if not (csv_path.exists() and meta_path.exists()):
        meta = _generate(csv_path, rows, seed)
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(meta_path)
    meta = json.loads(meta_path.read_text())
    return BenchData(
        csv=csv_path,
        contract=contract_path,
        rows=meta["rows"],
        planted_bad=meta["planted_bad"],
        by_kind=meta["by_kind"],
        size_bytes=csv_path.stat().st_size,
    )


def write_contract(path: Path) -> None:
    """The Gyre contract for the orders file (see src/gyre/ingest/contract.py)."""
    lines = [
        "# Contract for the benchmark's generated orders file (bench/_ingest_data.py).",
        "description: generated orders, 20 columns, ~1% planted bad rows",
        "columns:",
    ]
    for name, spec in COLUMNS:
        fields = [f"name: {name}"] + [f"{k}: {_yaml_value(v)}" for k, v in spec.items()]
        lines.append("  - {" + ", ".join(fields) + "}")
    lines.append(f"primary_key: [{', '.join(PRIMARY_KEY)}]")
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a YAML string, escapes included
    return str(value)


# ------------------------------------------------------------------------------ generation


def _generate(path: Path, rows: int, seed: int) -> dict[str, Any]:
    by_kind = dict.fromkeys(KINDS, 0)
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as out:
        out.write((",".join(NAMES) + "\n").encode())
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            rng = np.random.default_rng([seed, start // CHUNK_ROWS])
            lines, counts = _chunk(rng, start, n)
            out.write(_buffer_bytes(lines))
            for kind, count in counts.items():
                by_kind[kind] += count
    tmp.replace(path)
    return {
        "rows": rows,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "planted_bad": sum(by_kind.values()),
        "by_kind": by_kind,
    }


def _buffer_bytes(lines: pa.Array) -> bytes:
    # A string array without nulls keeps its values back to back in one buffer: that buffer,
    # between the first and last offset, is the text of all lines.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    data = lines.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[len(lines)]]


def _pick(rng: np.random.Generator, choices: tuple[str, ...], n: int) -> pa.Array:
    return pa.array(np.array(choices, dtype=object)[rng.integers(0, len(choices), n)], pa.string())


def _fmt(values: np.ndarray, decimals: int) -> pa.Array:
    # Round first so the text has at most ``decimals`` digits after the point.
    return pc.cast(pa.array(np.round(values, decimals)), pa.string())


def _blank_where(column: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), "", column)


def _chunk(rng: np.random.Generator, start: int, n: int) -> tuple[pa.Array, dict[str, int]]:
    epoch_2023 = np.datetime64("2023-01-01T00:00:00", "s")
    created = epoch_2023 + rng.integers(0, 2 * 365 * 86400, n).astype("timedelta64[s]")
    ship = created.astype("datetime64[D]") + rng.integers(0, 10, n).astype("timedelta64[D]")
    birth = np.datetime64("1930-01-01", "D") + rng.integers(0, 75 * 365, n).astype("timedelta64[D]")
    first, last = rng.integers(0, len(FIRST), n), rng.integers(0, len(LAST), n)
    names = np.char.add(
        np.char.add(np.array(FIRST)[first], " "), np.array(LAST)[last]
    )  # "Ada Lovelace"
    emails = np.char.add(
        np.char.add(np.char.lower(np.array(FIRST)[first]), "."),
        np.char.add(np.char.lower(np.array(LAST)[last]), "@example.com"),
    )
    notes_pick = rng.random(n)
    notes = pc.if_else(
        pa.array(notes_pick < 0.05),
        _pick(rng, QUOTED_NOTES, n),
        pc.if_else(pa.array(notes_pick < 0.30), _pick(rng, NOTES, n), ""),
    )
    cols: dict[str, pa.Array] = {
        "order_id": pc.cast(pa.array(np.arange(start + 1, start + n + 1)), pa.string()),
        "customer_id": pc.cast(pa.array(rng.integers(1, 10_000_000, n)), pa.string()),
        "quantity": pc.cast(pa.array(rng.integers(1, 1000, n)), pa.string()),
        "unit_price": _fmt(np.minimum(rng.lognormal(3.0, 1.0, n), 99_999), 2),
        "discount": _fmt(rng.uniform(0, 0.5, n), 3),
        "score": _blank_where(_fmt(rng.normal(50, 15, n), 4), rng.random(n) < 0.1),
        "latitude": _fmt(rng.uniform(-90, 90, n), 5),
        "longitude": _fmt(rng.uniform(-180, 180, n), 5),
        "customer_name": pa.array(names, pa.string()),
        "email": pa.array(emails, pa.string()),
        "country": _pick(rng, COUNTRIES, n),
        "status": _pick(rng, STATUSES, n),
        "channel": _pick(rng, CHANNELS, n),
        "category": _blank_where(_pick(rng, CATEGORIES, n), rng.random(n) < 0.05),
        "created_at": pc.cast(pa.array(created), pa.string()),
        "ship_date": _blank_where(pc.cast(pa.array(ship), pa.string()), rng.random(n) < 0.2),
        "birth_date": pc.cast(pa.array(birth), pa.string()),
        "is_member": pc.if_else(pa.array(rng.random(n) < 0.4), "true", "false"),
        "gift_wrap": _blank_where(
            pc.if_else(pa.array(rng.random(n) < 0.1), "true", "false"), rng.random(n) < 0.3
        ),
        "notes": notes,
    }
    bad = np.flatnonzero(rng.random(n) < BAD_SHARE)
    kinds = rng.choice(len(KINDS), size=len(bad), p=_KIND_WEIGHTS)
    counts = {kind: int((kinds == i).sum()) for i, kind in enumerate(KINDS)}
    ragged = bad[kinds == KINDS.index("ragged")]
    for i, kind in enumerate(KINDS[:-1]):
        _plant(rng, cols, kind, bad[kinds == i])
    lines = pc.binary_join_element_wise(*[cols[c] for c in NAMES], ",")
    if len(ragged):
        lines = _make_ragged(rng, cols, lines, ragged)
    return pc.binary_join_element_wise(lines, "\n", ""), counts


def _set(cols: dict[str, pa.Array], column: str, rows: np.ndarray, values: list[str]) -> None:
    if not len(rows):
        return
    mask = np.zeros(len(cols[column]), dtype=bool)
    mask[rows] = True
    # replace_with_mask takes the replacements in order of the set positions.
    cols[column] = pc.replace_with_mask(cols[column], pa.array(mask), pa.array(values, pa.string()))


def _plant(
    rng: np.random.Generator, cols: dict[str, pa.Array], kind: str, rows: np.ndarray
) -> None:
    """Put one defect of ``kind`` into each row of ``rows`` (sorted), one column per row."""
    which = rng.integers(0, 3, len(rows))
    if kind == "out_of_range":
        plants: list[tuple[str, Any]] = [
            ("quantity", lambda k: [str(v) for v in rng.integers(1000, 10_000, k)]),
            ("discount", lambda k: [f"{v:.3f}" for v in rng.uniform(1.5, 3, k)]),
            ("latitude", lambda k: [f"{v:.5f}" for v in rng.uniform(91, 180, k)]),
        ]
    elif kind == "unparsable_number":
        plants = [
            ("unit_price", lambda k: ["12.5x"] * k),
            ("unit_price", lambda k: ["N/A"] * k),
            ("quantity", lambda k: ["seven"] * k),
        ]
    elif kind == "not_allowed":
        plants = [
            ("status", lambda k: ["lost"] * k),
            ("country", lambda k: ["XX"] * k),
            ("channel", lambda k: ["fax"] * k),
        ]
    elif kind == "missing_required":
        plants = [
            ("customer_name", lambda k: [""] * k),
            ("customer_id", lambda k: [""] * k),
            ("created_at", lambda k: [""] * k),
        ]
    elif kind == "bad_datetime":
        plants = [
            ("created_at", lambda k: ["2024-13-05 10:00:00"] * k),
            ("birth_date", lambda k: ["1985-02-30"] * k),
            ("created_at", lambda k: ["yesterday"] * k),
        ]
    else:  # bad_bool
        plants = [("is_member", lambda k: ["maybe"] * k)] * 3
    # Rows going to the same column are merged so each column is rewritten once.
    by_column: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for i, (column, make) in enumerate(plants):
        picked = rows[which == i]
        entry = by_column.setdefault(column, ([], []))
        entry[0].append(picked)
        entry[1].extend(make(len(picked)))
    for column, (parts, values) in by_column.items():
        positions = np.concatenate(parts)
        order = np.argsort(positions, kind="stable")
        _set(cols, column, positions[order], [values[j] for j in order])


def _make_ragged(
    rng: np.random.Generator, cols: dict[str, pa.Array], lines: pa.Array, rows: np.ndarray
) -> pa.Array:
    fields = {c: cols[c].take(pa.array(rows)).to_pylist() for c in NAMES}
    texts = []
    for j in range(len(rows)):
        values = [fields[c][j] for c in NAMES]
        if rng.random() < 0.5:
            del values[int(rng.integers(1, len(values) - 1))]  # one field too few
        else:
            values.insert(int(rng.integers(1, len(values))), "extra")  # one too many
        texts.append(",".join(values))
    mask = np.zeros(len(lines), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(texts, pa.string()))
