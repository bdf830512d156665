"""The bikes example on the real UCI bike-sharing data: config, contract, quarantine, SQL."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gyre.core.config import ProjectConfig, load_project
from gyre.core.errors import QuarantineLimitError
from gyre.ingest import BatchResult, ingest_batch, load_contract
from gyre.prepare import run_sql_file
from tests.support.bikes import FEATURE_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bikes"


@pytest.fixture(scope="module")
def cfg() -> ProjectConfig:
    return load_project(EXAMPLE)


@pytest.fixture(scope="module")
def hour_csv(shared_data: Path) -> Path:
    return shared_data / "drift" / "bike-sharing" / "hour.csv"


@pytest.fixture(scope="module")
def ingested(cfg: ProjectConfig, hour_csv: Path) -> BatchResult:
    contract = load_contract(cfg.resolve(cfg.source("rentals").contract))
    return ingest_batch(hour_csv, contract, cfg.source("rentals").quarantine_limit)


def test_example_files_are_all_there(cfg: ProjectConfig) -> None:
    assert cfg.resolve(cfg.source("rentals").contract).is_file()
    sql = cfg.dataset("features").sql
    assert sql is not None and cfg.resolve(sql).is_file()
    assert (EXAMPLE / "README.md").is_file()
    assert cfg.source("rentals").path == "data/incoming/*.csv"


def test_contract_matches_the_file_header(cfg: ProjectConfig, hour_csv: Path) -> None:
    contract = load_contract(cfg.resolve(cfg.source("rentals").contract))
    with hour_csv.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert list(contract.column_names) == header
    assert not any(c.nullable for c in contract.columns)


def test_hour_csv_quarantines_exactly_the_22_zero_humidity_rows(
    ingested: BatchResult, hour_csv: Path
) -> None:
    assert (ingested.rows_in, ingested.accepted, ingested.quarantined) == (17379, 17357, 22)
    q = ingested.quarantine
    assert set(q.column("rule").to_pylist()) == {"exclusive_min"}
    assert set(q.column("column").to_pylist()) == {"hum"}
    assert set(q.column("value").to_pylist()) == {"0"}
    # The positions point at the right lines of hour.csv: read them back independently.
    physical = hour_csv.read_text().splitlines()
    for line in q.column("line").to_pylist():
        fields = physical[line - 1].split(",")
        assert fields[1] == "2011-03-10" and float(fields[12]) == 0.0
        assert int(fields[0]) == line - 1  # `instant` counts rows from line 2
    assert q.column("line").to_pylist() == list(range(1553, 1575))
    assert pc.min(ingested.accepted_table["hum"]).as_py() > 0
    raw = ingested.quarantined_rows
    assert raw.column("dteday").to_pylist() == ["2011-03-10"] * 22


def test_march_2011_alone_passes_its_quarantine_limit(
    cfg: ProjectConfig, hour_csv: Path, tmp_path: Path
) -> None:
    # The demo ingests one month per batch; the sensor outage is 3.0% of March 2011.
    lines = hour_csv.read_text().splitlines()
    march = [lines[0]] + [row for row in lines[1:] if row.split(",")[1].startswith("2011-03")]
    batch = tmp_path / "2011-03.csv"
    batch.write_text("\r\n".join(march) + "\r\n")
    contract = load_contract(cfg.resolve(cfg.source("rentals").contract))
    result = ingest_batch(batch, contract, cfg.source("rentals").quarantine_limit)
    assert (result.rows_in, result.quarantined) == (730, 22)
    assert result.quarantine.column("line").to_pylist()[0] == march.index(lines[1552]) + 1
    with pytest.raises(QuarantineLimitError, match=r"22 of 730 rows \(3\.0%\)"):
        ingest_batch(batch, contract, quarantine_limit=0.02)


def test_features_sql_on_the_real_data(cfg: ProjectConfig, ingested: BatchResult) -> None:
    sql = cfg.dataset("features").sql
    assert sql is not None
    features = run_sql_file(cfg.resolve(sql), {"rentals": ingested.accepted_table})
    assert features.column_names == FEATURE_COLUMNS
    assert features.num_rows == ingested.accepted == 17357
    assert features.schema.field("dteday").type == pa.date32()
    model = cfg.model("demand")
    assert set(model.features) <= set(features.column_names)
    assert model.target in features.column_names and model.time_column in features.column_names
    # Ordered by day, then hour.
    keys = list(zip(features["dteday"].to_pylist(), features["hr"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert keys[0] == (dt.date(2011, 1, 1), 0) and keys[-1] == (dt.date(2012, 12, 31), 23)
    # Derived columns agree with the raw ones.
    raw = ingested.accepted_table.sort_by([("dteday", "ascending"), ("hr", "ascending")])
    temp_c = features["temp_c"].to_numpy()
    assert np.allclose(temp_c, raw["temp"].to_numpy() * 41, atol=0.005)
    assert np.allclose(features["hum_pct"].to_numpy(), raw["hum"].to_numpy() * 100, atol=0.05)
    how = pc.add(pc.multiply(raw["weekday"], 24), raw["hr"])
    assert features["hour_of_week"].to_pylist() == how.to_pylist()
    assert pc.max(features["hour_of_week"]).as_py() == 167
    rush = features.filter(pc.equal(features["is_rush_hour"], 1))
    assert set(rush["hr"].to_pylist()) == {7, 8, 9, 16, 17, 18, 19}
    assert set(rush["workingday"].to_pylist()) == {1}
    assert features["cnt"].to_pylist() == raw["cnt"].to_pylist()
