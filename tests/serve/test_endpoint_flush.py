"""A quiet server still makes its buffered inference records durable."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gyre.monitor.inference_log import InferenceLog
from gyre.serve.app import InferenceEvent
from gyre.serve.endpoint import _flush_periodically, inference_table


def _event() -> InferenceEvent:
    return InferenceEvent(
        request_id="r-1",
        time=datetime.now(UTC),
        endpoint="demand",
        model_name="demand",
        model_version=3,
        latency_ms=1.5,
        inputs={"hr": np.array([1, 2]), "temp_c": np.array([10.5, 11.0])},
        outputs=np.array([40.0, 42.5]),
    )


def test_inference_rows_carry_inputs_output_and_version() -> None:
    table = inference_table(_event())
    assert table.num_rows == 2
    assert table["row"].to_pylist() == [0, 1]
    assert table["model_version"].to_pylist() == [3, 3]
    assert table["in__temp_c"].to_pylist() == [10.5, 11.0]
    assert table["output"].to_pylist() == [40.0, 42.5]


def test_buffered_rows_reach_disk_without_further_traffic(tmp_path: Path) -> None:
    log = InferenceLog(tmp_path, max_rows=10_000, max_seconds=3600)
    log.append(inference_table(_event()))
    assert log.query("demand").num_rows == 0  # buffered, not yet durable
    stop = threading.Event()
    thread = threading.Thread(target=_flush_periodically, args=(log, stop, 0.05), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while log.query("demand").num_rows == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert log.query("demand").num_rows == 2
