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
