"""The inference log: atomic Parquet partitions, thread-safe buffered appends, DuckDB reads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gyre.core.errors import DataError, MonitorError
from gyre.monitor import inference_log as module
from gyre.monitor.inference_log import INFERENCE_SCHEMA, InferenceLog

SRC = Path(__file__).resolve().parents[2] / "src"
T0 = datetime(2024, 5, 1, 23, 59, 0, tzinfo=UTC)


def records(
    endpoint: str = "churn",
    request: str = "r1",
    times: list[datetime] | None = None,
    **features: list[Any],
) -> pa.Table:
    """One request's rows, one per time, with the given `in__` features."""
    times = times or [T0]
    n = len(times)
    columns: dict[str, Any] = {
        "request_id": [request] * n,
        "row": list(range(n)),
        "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "endpoint": [endpoint] * n,
        "model": ["churn-model"] * n,
        "model_version": [3] * n,
        "latency_ms": [1.5] * n,
        "output": [0.1 * i for i in range(n)],
    }
    columns.update({f"in__{name}": values for name, values in features.items()})
    return pa.table(columns)


def test_flush_writes_hive_partitions_atomically(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, max_rows=1000, max_seconds=3600)
    # three rows straddling midnight UTC, for two endpoints
    times = [T0, T0 + timedelta(seconds=30), T0 + timedelta(minutes=2)]
    log.append(records("churn", "r1", times, tenure=[1.0, 2.0, 3.0]))
    log.append(records("fraud", "r2", [T0], amount=[9.5]))
    assert list(tmp_path.iterdir()) == []  # buffered, nothing on disk yet
    assert log.buffered_rows == 4

    written = log.flush()
    assert log.buffered_rows == 0
    layout = sorted(str(p.relative_to(tmp_path).parent) for p in written)
    assert layout == [
        "endpoint=churn/date=2024-05-01",
        "endpoint=churn/date=2024-05-02",
        "endpoint=fraud/date=2024-05-01",
    ]
    assert all(p.name.startswith("part-") and p.suffix == ".parquet" for p in written)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files left
    # the path carries the endpoint; the file carries everything else
    stored = pq.read_table(written[0])
    assert "endpoint" not in stored.column_names
    assert stored.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert log.flush() == []


def test_query_returns_what_was_appended(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path)
    times = [T0, T0 + timedelta(seconds=30), T0 + timedelta(minutes=2)]
    sent = records("churn", "r1", times, tenure=[1.0, 2.0, 3.0], plan=["a", "b", None])
    log.append(sent)
    log.append(records("fraud", "r2", [T0], amount=[9.5]))
    log.flush()

    got = log.query("churn")
    assert got.schema.names == [*INFERENCE_SCHEMA.names, "in__tenure", "in__plan"]
    assert got.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert got.schema.field("row").type == pa.int64()
    assert got.to_pylist() == sent.cast(got.schema).to_pylist()
    assert log.query("fraud").column("in__amount").to_pylist() == [9.5]


def test_query_filters_by_time_window(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path)
    times = [T0 + timedelta(hours=h) for h in range(-2, 3)]  # two days
    log.append(records(times=times))
    log.flush()
    window = log.query("churn", start=T0, end=T0 + timedelta(hours=2))
    assert window.column("time").to_pylist() == [T0, T0 + timedelta(hours=1)]  # end excluded
    assert log.query("churn", start=T0 + timedelta(hours=2)).num_rows == 1
    assert log.query("churn", end=T0 - timedelta(hours=1)).num_rows == 1
    with pytest.raises(MonitorError, match="no time zone"):
        log.query("churn", start=datetime(2024, 5, 1))


def test_query_of_an_endpoint_with_no_data_is_empty(tmp_path: Path) -> None:
    empty = InferenceLog(tmp_path).query("nothing-yet")
    assert empty.num_rows == 0
    assert empty.schema == INFERENCE_SCHEMA


def test_parts_with_different_features_are_read_together(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path)
    log.append(records(request="r1", tenure=[1.0]))
    log.flush()
    log.append(records(request="r2", plan=["gold"], tenure=[4]))  # int tenure is cast to float64
    log.flush()
    got = log.query("churn")
    by_request = {r["request_id"]: r for r in got.to_pylist()}
    assert by_request["r1"]["in__tenure"] == 1.0 and by_request["r1"]["in__plan"] is None
    assert by_request["r2"]["in__tenure"] == 4.0 and by_request["r2"]["in__plan"] == "gold"


def test_auto_flush_when_the_buffer_reaches_max_rows(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, max_rows=5, max_seconds=3600)
    log.append(records(request="a", times=[T0] * 3))
    assert log.buffered_rows == 3 and not list(tmp_path.rglob("*.parquet"))
    log.append(records(request="b", times=[T0] * 3))
    assert log.buffered_rows == 0
    assert log.query("churn").num_rows == 6


def test_auto_flush_when_the_oldest_row_is_old_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(module._time, "monotonic", lambda: clock[0])
    log = InferenceLog(tmp_path, max_rows=1000, max_seconds=5.0)
    log.append(records(request="a"))
    clock[0] += 4.9
    log.append(records(request="b"))
    assert log.buffered_rows == 2  # oldest row is 4.9 s old
    clock[0] += 0.2
    log.append(records(request="c"))
    assert log.buffered_rows == 0  # 5.1 s: checked on append, flushed
    assert log.query("churn").num_rows == 3


def test_context_manager_flushes(tmp_path: Path) -> None:
    with InferenceLog(tmp_path) as log:
        log.append(records())
    assert InferenceLog(tmp_path).query("churn").num_rows == 1


def test_concurrent_threads_lose_nothing(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, max_rows=64, max_seconds=3600)
    threads, per_thread = 8, 40

    def serve(worker: int) -> None:
        for i in range(per_thread):
            log.append(records(request=f"w{worker}-{i}", times=[T0] * 3, x=[1.0, 2.0, 3.0]))

    pool = [threading.Thread(target=serve, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    log.flush()
    got = log.query("churn")
    assert got.num_rows == threads * per_thread * 3
    keys = set(zip(got["request_id"].to_pylist(), got["row"].to_pylist(), strict=True))
    assert len(keys) == got.num_rows  # no duplicates either
    assert len(list(tmp_path.rglob("*.parquet"))) > 1


_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa
from gyre.monitor.inference_log import InferenceLog

root, worker = Path(sys.argv[1]), sys.argv[2]
log = InferenceLog(root, max_rows=7)
for i in range(50):
    log.append(pa.table({
        "request_id": [f"{worker}-{i}"], "row": [0],
        "time": pa.array([datetime(2024, 5, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        "endpoint": ["churn"], "output": [float(i)],
    }))
log.flush()
"""


def test_several_processes_share_one_root(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), w], env=env, stderr=subprocess.PIPE
        )
        for w in "ABC"
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    got = InferenceLog(tmp_path).query("churn")
    assert got.num_rows == 150
    assert len(set(got.column("request_id").to_pylist())) == 150


def test_a_failed_write_keeps_the_rows(tmp_path: Path) -> None:
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the log folder should be")
    log = InferenceLog(blocked)
    log.append(records(tenure=[1.0]))
    with pytest.raises(MonitorError, match="cannot write monitoring log part"):
        log.flush()
    assert log.buffered_rows == 1
    blocked.unlink()
    assert len(log.flush()) == 1
    assert log.query("churn").num_rows == 1


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (records().drop_columns(["request_id"]), "lack column"),
        (records().append_column("surprise", pa.array([1])), "unexpected column 'surprise'"),
        (records(endpoint="../etc"), "cannot be used as an inference log partition"),
        (
            records().set_column(2, "time", pa.array([datetime(2024, 5, 1)], pa.timestamp("us"))),
            "time-zone-aware",
        ),
        (
            records().set_column(0, "request_id", pa.array([None], pa.string())),
            "null value",
        ),
        (records(when=pa.array([T0], pa.timestamp("us", tz="UTC"))), "numbers"),
        (records().set_column(7, "output", pa.array(["high"])), "cannot be read as double"),
    ],
)
def test_bad_records_are_refused_with_a_reason(
    tmp_path: Path, table: pa.Table, needle: str
) -> None:
    log = InferenceLog(tmp_path)
    with pytest.raises(DataError, match=needle):
        log.append(table)
    assert log.buffered_rows == 0


def test_a_feature_changing_type_in_the_buffer_is_refused(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path)
    log.append(records(plan=[1.0]))
    with pytest.raises(DataError, match="arrived as string"):
        log.append(records(plan=["gold"]))
    assert log.buffered_rows == 1


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MonitorError):
        InferenceLog(tmp_path, max_rows=0)
