"""SIGKILL `gyre ingest` at random moments, run it again: no row lost, none duplicated.

The source position (files seen) is committed in the same transaction as the dataset version
and its quarantine, so wherever the kill lands, a re-run picks up exactly where the last
committed batch ended. Seeded, so a failure reproduces.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gyre.core.settings import Settings
from gyre.loop.demo import split_months
from gyre.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _ingest(project: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gyre", "ingest", "rentals", "--json", "-p", str(project)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_ingests_resume_without_loss_or_duplicates(
    tmp_path: Path, shared_data: Path, workspace_store_url: str | None
) -> None:
    project = tmp_path / "bikes"
    shutil.copytree(REPO / "examples" / "bikes", project)
    months = split_months(shared_data / "drift" / "bike-sharing" / "hour.csv", tmp_path / "months")
    incoming = project / "data" / "incoming"
    incoming.mkdir(parents=True)
    for _, path in months:
        shutil.copy2(path, incoming / path.name)
    env = dict(os.environ)
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    rng = random.Random(20261126)
    kills = 0
    for _ in range(6):
        process = _ingest(project, env)
        time.sleep(rng.uniform(0.5, 3.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(60)
    final = _ingest(project, env)
    assert final.wait(600) == 0
    assert kills >= 1, "no run was interrupted; the kill points need to be earlier"

    settings = None
    if workspace_store_url:
        settings = Settings(
            store_url=workspace_store_url, artifacts_url=str(project / ".gyre" / "objects")
        )
    ws = Workspace.open(project, settings=settings)
    stored = ws.read_dataset("rentals")
    instants = stored["instant"].to_pylist()
    assert len(instants) == 17357 and len(set(instants)) == 17357  # every accepted row, once
    assert ws.read_dataset("rentals.quarantine").num_rows == 22  # the refused rows, once
    state = ws.store.datasets.source_state("rentals")
    assert len(state["files"]) == 24
    versions = ws.dataset_versions("rentals")
    assert [v.version for v in versions] == list(range(24, 0, -1))  # one version per file
    assert sum(v.stats["accepted"] for v in versions) == 17357
    assert ws.verify_audit()[1] is None
    ws.close()


def _gyre(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gyre", "ingest", *args, "--json", "-p", str(project)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_at_random(
    start: Callable[[], subprocess.Popen[bytes]], rng: random.Random, times: int, span: float
) -> int:
    """Start and SIGKILL a process ``times`` times, each after a random wait; count kills."""
    kills = 0
    for _ in range(times):
        process = start()
        time.sleep(rng.uniform(0.6, span))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(60)
    return kills


def _open(project: Path, store_url: str | None) -> Workspace:
    settings = None
    if store_url:
        settings = Settings(store_url=store_url, artifacts_url=str(project / ".gyre" / "objects"))
    return Workspace.open(project, settings=settings)


@pytest.mark.postgres
def test_killed_sql_ingests_resume_without_loss_or_duplicates(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    """An ERP table read incrementally by cursor, killed mid-read and mid-commit."""
    from sqlalchemy import create_engine, text

    from tests.conftest import postgres_database

    rows = 60_000
    with postgres_database() as erp_url:
        engine = create_engine(erp_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2), "
                    "updated_at timestamp)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO orders SELECT g, g % 997 / 10.0, "
                    "timestamp '2024-01-01' + g * interval '1 second' "
                    "FROM generate_series(1, :n) g"
                ),
                {"n": rows},
            )
        engine.dispose()
        project = tmp_path / "erp"
        project.mkdir()
        (project / "gyre.yaml").write_text(
            "project: erp\nsources:\n  orders:\n"
            f"    {{type: sql, url: '{erp_url}', table: orders, mode: incremental,"
            " cursor: updated_at, key: [id], batch_rows: 4000}\n"
        )
        env = dict(os.environ)
        if workspace_store_url:
            env["GYRE_STORE_URL"] = workspace_store_url
        rng = random.Random(20261127)
        kills = _kill_at_random(lambda: _gyre(project, env, "orders"), rng, 6, 3.0)
        assert _gyre(project, env, "orders").wait(600) == 0
        assert kills >= 1, "no run was interrupted; the kill points need to be earlier"

        ws = _open(project, workspace_store_url)
        ids = ws.read_dataset("orders")["id"].to_pylist()
        assert len(ids) == rows and set(ids) == set(range(1, rows + 1))
        versions = ws.dataset_versions("orders")
        assert sum(v.stats["accepted"] for v in versions) == rows
        assert len(versions) == rows // 4000  # one version per batch, none repeated
        ws.close()


@pytest.mark.streams
def test_killed_mqtt_followers_resume_without_loss_or_duplicates(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    """A sensor publishes at a steady rate (QoS 1) while `gyre ingest --follow` is killed."""
    import json
    import threading
    import uuid

    from tests.conftest import require_service
    from tests.integration.test_ingest_streams import mqtt_publish

    require_service("Mosquitto", "127.0.0.1", 1883)
    topic = f"gyre-test/{uuid.uuid4().hex}/temp"
    project = tmp_path / "plant"
    project.mkdir()
    options = {
        "type": "mqtt",
        "topics": [topic],
        "client_id": f"gyre-test-{uuid.uuid4().hex[:12]}",
        "batch_messages": 150,
        "batch_seconds": 0.2,
        "idle_seconds": 1.5,
    }
    (project / "gyre.yaml").write_text(
        f"project: plant\nsources:\n  readings:\n    {json.dumps(options)}\n"
    )
    env = dict(os.environ)
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    assert _gyre(project, env, "readings").wait(60) == 0  # the broker's session starts here

    total = 2400
    payloads = [json.dumps({"seq": i, "temp": 20 + i % 7}).encode() for i in range(1, total + 1)]

    def publish() -> None:
        # ~15 s at ~160 messages/s, spanning the kills. Mosquitto keeps at most 1000 messages
        # for an offline session (max_queued_messages); a restart takes 1-3 s here, so the
        # rate stays well below what would overflow it.
        for start in range(0, total, 40):
            mqtt_publish(topic, payloads[start : start + 40])
            time.sleep(0.25)

    publisher = threading.Thread(target=publish)
    publisher.start()
    rng = random.Random(20261128)
    kills = _kill_at_random(lambda: _gyre(project, env, "readings", "--follow"), rng, 6, 3.0)
    publisher.join(120)
    assert _gyre(project, env, "readings").wait(120) == 0  # drains what is left, then stops
    assert kills >= 1

    ws = _open(project, workspace_store_url)
    seqs = [int(s) for s in ws.read_dataset("readings")["seq"].to_pylist()]
    assert len(seqs) == total and set(seqs) == set(range(1, total + 1))
    ws.close()


@pytest.mark.streams
def test_follow_stops_cleanly_on_sigterm_with_the_batch_in_hand_committed(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    import json
    import uuid

    from tests.conftest import require_service
    from tests.integration.test_ingest_streams import mqtt_publish

    require_service("Mosquitto", "127.0.0.1", 1883)
    topic = f"gyre-test/{uuid.uuid4().hex}/temp"
    project = tmp_path / "plant"
    project.mkdir()
    options = {
        "type": "mqtt",
        "topics": [topic],
        "client_id": f"gyre-test-{uuid.uuid4().hex[:12]}",
        "batch_messages": 1000,
        "batch_seconds": 60,  # only the stop can end this batch
    }
    (project / "gyre.yaml").write_text(
        f"project: plant\nsources:\n  readings:\n    {json.dumps(options)}\n"
    )
    env = dict(os.environ)
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    assert _gyre(project, env, "readings").wait(60) == 0  # the broker's session starts here
    follower = subprocess.Popen(
        [sys.executable, "-m", "gyre", "ingest", "readings", "--follow", "-p", str(project)],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert follower.stdout is not None
    assert "following readings" in follower.stdout.readline()
    mqtt_publish(topic, [json.dumps({"seq": i}).encode() for i in range(1, 51)])
    # Let the follower receive them (the batch stays open for a minute). One second was too
    # little on a loaded CI machine: 45 of the 50 had arrived when the signal came.
    time.sleep(3.0)
    follower.send_signal(signal.SIGTERM)
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0, out
    assert "50 rows in = 50 accepted" in out
    ws = _open(project, workspace_store_url)
    assert sorted(int(s) for s in ws.read_dataset("readings")["seq"].to_pylist()) == list(
        range(1, 51)
    )
    ws.close()


def test_killed_ingests_of_files_read_in_blocks_resume_without_loss_or_duplicates(
    tmp_path: Path, workspace_store_url: str | None
) -> None:
    """Files read in blocks of 16 KB (so a kill lands while blocks are checked and parts and
    the raw copy are half written), killed at random, then run to the end."""
    project = tmp_path / "shop"
    (project / "in").mkdir(parents=True)
    (project / "orders.yaml").write_text(
        "columns:\n  - {name: id, type: int}\n  - {name: qty, type: int, min: 1}\n"
        "  - {name: note, type: string, nullable: true}\nprimary_key: [id]\n"
    )
    (project / "gyre.yaml").write_text(
        "project: shop\nsources:\n  orders: {type: csv, path: 'in/*.csv', contract: orders.yaml}\n"
    )
    files, rows, refused = 6, 12_000, 0
    for f in range(files):
        lines = ["id,qty,note"]
        for i in range(f * rows + 1, (f + 1) * rows + 1):
            qty = 0 if i % 500 == 0 else i % 90 + 1  # 0 breaks min: 1
            refused += qty == 0
            lines.append(f'{i},{qty},"note, {i}"')
        (project / "in" / f"{f:02d}.csv").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    env.update(GYRE_INGEST_BLOCKS_FROM_BYTES="1", GYRE_INGEST_BLOCK_BYTES="16384")
    if workspace_store_url:
        env["GYRE_STORE_URL"] = workspace_store_url
    rng = random.Random(20261201)
    kills = _kill_at_random(lambda: _gyre(project, env, "orders"), rng, 6, 2.5)
    assert _gyre(project, env, "orders").wait(600) == 0
    assert kills >= 1, "no run was interrupted; the kill points need to be earlier"

    ws = _open(project, workspace_store_url)
    ids = ws.read_dataset("orders")["id"].to_pylist()
    assert len(ids) == files * rows - refused and len(set(ids)) == len(ids)
    assert ws.read_dataset("orders.quarantine").num_rows == refused
    versions = ws.dataset_versions("orders")
    assert [v.version for v in versions] == list(range(files, 0, -1))
    runs = [r for r in ws.runs(kind="ingest") if r.status == "completed"]
    assert len(runs) == files and all(r.metrics["read_in_blocks"] for r in runs)
    assert ws.verify_audit()[1] is None
    ws.close()
