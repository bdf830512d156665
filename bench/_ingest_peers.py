"""The ingest benchmark's peers, each run by ``bench/ingest.py`` in a process (and venv) of its own.

    python bench/_ingest_peers.py duckdb  --csv F --spec S --out DIR   # the floor (project venv)
    python bench/_ingest_peers.py pandera --csv F --spec S --out DIR   # .bench/pandera-venv
    python bench/_ingest_peers.py dlt     --csv F --spec S --out DIR   # .bench/dlt-venv

``--spec`` is the contract as JSON (columns with type, nullable, min, max, allowed, regex; the
primary key), so this file imports nothing from the project: each peer gets only its own
libraries. Each prints one JSON line with ``rows_read`` and ``accepted`` (rows written to Parquet)
and the versions it ran with.

How each peer is used, as its documentation shows:

* **duckdb** (the floor): ``COPY (FROM read_csv(...)) TO 'x.parquet'`` with the contract's column
  types and ``ignore_errors=true`` (rows that do not parse are skipped instead of aborting the
  copy). No ranges, sets, regex, not-null or key checks, no quarantine.
* **pandera**: pandas reads the file in chunks (``chunksize``, so memory stays bounded) with
  every column as text; a ``DataFrameSchema`` equal to the contract validates each chunk with
  ``lazy=True``, its rules written as vectorised checks on the text (parses as the type, range,
  allowed set, regex, not null, unique); the rows pandera reports are dropped, the rest converted
  to their types and written to one Parquet file. Not ``coerce=True``: when one value of a column
  fails to convert, pandera looks for the failures value by value in Python (481 s for 500k rows
  of this file), and its bool coercion calls every non-empty string, ``false`` included, True.
  ``unique`` holds per chunk only. Rows with too many fields are skipped by pandas
  (``on_bad_lines="skip"``); rows with too few are padded with nulls and may pass.
* **dlt**: ``readers(...).read_csv()`` from ``dlt.sources.filesystem`` (pandas chunks, as text),
  ``apply_hints(columns=<pydantic model of the contract>, schema_contract={"columns": "freeze",
  "data_type": "discard_row"})``, so rows that fail validation are discarded, loaded with the
  ``filesystem`` destination as Parquet. dlt does not report discarded rows; ``accepted`` is
  counted from the Parquet files it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("tool", choices=("duckdb", "pandera", "dlt"))
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chunk", type=int, default=500_000)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    start = time.perf_counter()
    result = {"duckdb": run_duckdb, "pandera": run_pandera, "dlt": run_dlt}[args.tool](
        args.csv, spec, args.out, args.chunk
    )
    result["work_seconds"] = time.perf_counter() - start
    print(json.dumps(result))


def _versions(*names: str) -> dict[str, str]:
    return {name: metadata.version(name) for name in names}


# ----------------------------------------------------------------------------- duckdb


_DUCKDB_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
}


def run_duckdb(csv: Path, spec: dict[str, Any], out: Path, chunk: int) -> dict[str, Any]:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    target = out / "orders.parquet"
    columns = ", ".join(f"'{c['name']}': '{_DUCKDB_TYPES[c['type']]}'" for c in spec["columns"])
    con = duckdb.connect()
    con.execute(
        f"COPY (FROM read_csv('{csv}', header = true, columns = {{{columns}}}, "
        f"ignore_errors = true)) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
    )
    (written,) = con.execute(f"SELECT count(*) FROM '{target}'").fetchone() or (0,)
    return {"rows_read": None, "accepted": int(written), "versions": _versions("duckdb")}


# ---------------------------------------------------------------------------- pandera


def run_pandera(csv: Path, spec: dict[str, Any], out: Path, chunk: int) -> dict[str, Any]:
    import pandas as pd
    import pandera.pandas as pa
    import pyarrow as arrow
    import pyarrow.parquet as pq

    schema = _pandera_schema(spec, pa, pd)
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    rows_read = accepted = 0
    reader = pd.read_csv(
        csv,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        chunksize=chunk,
        on_bad_lines="skip",
    )
    for frame in reader:
        rows_read += len(frame)
        try:
            valid = schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            rows = exc.failure_cases["index"].dropna()
            if len(rows) < len(exc.failure_cases):
                raise  # a failure pandera could not tie to a row: the schema is wrong
            valid = frame.drop(index=sorted({int(i) for i in rows}))
        table = arrow.Table.from_pandas(_typed(valid, spec, pd), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(out / "orders.parquet", table.schema, compression="zstd")
        writer.write_table(table.cast(writer.schema))
        accepted += len(valid)
    if writer is not None:
        writer.close()
    return {
        "rows_read": rows_read,
        "accepted": accepted,
        "chunk_rows": chunk,
        "versions": _versions("pandera", "pandas", "pyarrow"),
    }


_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


def _parser(kind: str, pd: Any) -> Any:
    """Text -> typed values, vectorised; what does not parse becomes null."""
    import numpy as np

    if kind == "int":
        return lambda s: pd.to_numeric(
            s.where(s.str.fullmatch(r"\s*[+-]?[0-9]+\s*")), errors="coerce"
        ).astype("Int64")
    if kind == "float":
        return lambda s: (lambda x: x.where(np.isfinite(x)))(pd.to_numeric(s, errors="coerce"))
    if kind == "date":
        return lambda s: pd.to_datetime(s.str.strip(), format="%Y-%m-%d", errors="coerce")
    if kind == "timestamp":
        return lambda s: pd.to_datetime(s.str.strip(), format="ISO8601", errors="coerce")
    if kind == "bool":
        return lambda s: (
            s.str.strip()
            .str.lower()
            .map({**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)})
        )
    return lambda s: s


def _pandera_schema(spec: dict[str, Any], pa: Any, pd: Any) -> Any:
    # Every column stays text and each rule is a vectorised check on it. pandera's own
    # `coerce=True` is the idiomatic way, but once a column holds one value that does not
    # convert, pandera finds the failures by converting value by value in Python: 481 s for
    # 500k rows of this file (measured), so no one would run it on 5M.
    key = set(spec.get("primary_key") or ())
    columns = {}
    for col in spec["columns"]:
        kind = col["type"]
        parse = _parser(kind, pd)
        bound = (lambda v: pd.Timestamp(v)) if kind in ("date", "timestamp") else (lambda v: v)
        checks = []
        if kind != "string":
            checks.append(
                pa.Check(lambda s, p=parse: s.isna() | p(s).notna(), name=f"parses_as_{kind}")
            )
        if col.get("min") is not None:
            low = bound(col["min"])
            checks.append(
                pa.Check(lambda s, p=parse, lo=low: ~(p(s) < lo).fillna(False), name="min")
            )
        if col.get("max") is not None:
            high = bound(col["max"])
            checks.append(
                pa.Check(lambda s, p=parse, hi=high: ~(p(s) > hi).fillna(False), name="max")
            )
        if col.get("allowed") is not None:
            checks.append(pa.Check.isin(col["allowed"]))
        if col.get("regex") is not None:
            checks.append(pa.Check.str_matches(f"^(?:{col['regex']})$"))
        columns[col["name"]] = pa.Column(
            str,
            checks=checks,
            nullable=bool(col.get("nullable")),
            unique=col["name"] in key,
        )
    return pa.DataFrameSchema(columns, strict=True)


def _typed(frame: Any, spec: dict[str, Any], pd: Any) -> Any:
    """The validated text frame with every column converted to its contract type."""
    out = frame.copy()
    for col in spec["columns"]:
        if col["type"] != "string":
            out[col["name"]] = _parser(col["type"], pd)(frame[col["name"]])
    return out


# -------------------------------------------------------------------------------- dlt


def run_dlt(csv: Path, spec: dict[str, Any], out: Path, chunk: int) -> dict[str, Any]:
    # No telemetry: the benchmark machine may have no internet, and a retrying sender would
    # be timed as part of the load.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = str(out / "dlt-home")
    import dlt
    import pyarrow.parquet as pq
    from dlt.sources.filesystem import readers

    model = _pydantic_model(spec)
    orders = readers(bucket_url=str(csv.parent.resolve()), file_glob=csv.name).read_csv(
        chunksize=chunk, dtype=str, keep_default_na=False, on_bad_lines="skip"
    )
    orders.apply_hints(
        table_name="orders",
        columns=model,
        schema_contract={"tables": "evolve", "columns": "freeze", "data_type": "discard_row"},
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_orders",
        destination=dlt.destinations.filesystem(bucket_url=str((out / "lake").resolve())),
        dataset_name="bench",
        pipelines_dir=str(out / "pipelines"),
    )
    pipeline.run(orders, loader_file_format="parquet")
    files = sorted((out / "lake" / "bench" / "orders").rglob("*.parquet"))
    accepted = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return {
        "rows_read": None,
        "accepted": accepted,
        "chunk_rows": chunk,
        "versions": _versions("dlt", "pydantic", "pandas", "pyarrow"),
    }


def _pydantic_model(spec: dict[str, Any]) -> Any:
    import datetime as dt
    from typing import Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

    class Row(BaseModel):
        model_config = ConfigDict(extra="forbid")

        @model_validator(mode="before")
        @classmethod
        def _empty_is_null(cls, data: Any) -> Any:
            # pandas gives "" for an empty field when read as text; the contract calls it null.
            if isinstance(data, dict):
                return {k: None if v == "" else v for k, v in data.items()}
            return data

    types: dict[str, Any] = {
        "int": int,
        "float": float,
        "string": str,
        "bool": bool,
        "date": dt.date,
        "timestamp": dt.datetime,
    }
    fields: dict[str, Any] = {}
    for col in spec["columns"]:
        kind = col["type"]
        annotation = types[kind]
        if col.get("allowed") is not None:
            annotation = Literal[tuple(col["allowed"])]
        constraints: dict[str, Any] = {}
        if col.get("min") is not None:
            constraints["ge"] = _bound(col["min"], kind)
        if col.get("max") is not None:
            constraints["le"] = _bound(col["max"], kind)
        if col.get("regex") is not None:
            constraints["pattern"] = f"^(?:{col['regex']})$"
        if col.get("nullable"):
            fields[col["name"]] = (Optional[annotation], Field(None, **constraints))  # noqa: UP045
        else:
            fields[col["name"]] = (annotation, Field(..., **constraints))
    return create_model("Order", __base__=Row, **fields)


def _bound(value: Any, kind: str) -> Any:
    import datetime as dt

    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
