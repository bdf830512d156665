"""`gyre demo`: the whole closed loop, for real, on two years of bike-rental data.

1. the bundled example project (``gyre/examples/bikes``) is copied into the demo folder and the
   UCI hourly data is cut into monthly CSV batches, as an upstream system would drop them;
2. the first months are ingested through the contract (bad rows quarantined), features are
   built with DuckDB SQL, a LightGBM model is trained, gated and promoted to ``champion``;
3. a real server process (``gyre serve``) serves the champion over the Open Inference Protocol;
4. each following month is replayed as HTTP requests (one per day); every inference is logged,
   and the true counts come back as feedback;
5. the monitor compares the month's served inputs with the training data (PSI per feature) and
   its error with the champion's validation error, raising alerts;
6. the month's batch then arrives as new data, and a performance alert triggers the retrain
   policy: retrain on recent data, gate against the champion, promote; the server picks the new
   version up without a restart;
7. a summary compares every model version's error on the months that followed.

Every step is a run in the store, an edge in the lineage graph and an event in the audit trail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gyre.core.errors import ServeError, WorkspaceError

if TYPE_CHECKING:
    import httpx
    import pyarrow as pa

    from gyre.core.context import StageContext
    from gyre.core.progress import Progress

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bikes"
MODEL = "demand"
ENDPOINT = "demand"
MONITOR = "demand"
SOURCE = "rentals"


@dataclass(frozen=True)
class DemoOptions:
    directory: Path
    data: Path | None = None
    first_months: int = 6
    port: int | None = None
    poll_interval: float = 0.5
    force: bool = False


def create_project(directory: Path, *, force: bool) -> None:
    """Copy the example project into ``directory`` (refusing to clobber other work)."""
    if directory.exists() and any(directory.iterdir()):
        if not force:
            raise WorkspaceError(
                f"{directory} is not empty",
                hint="choose another folder, or pass --force to replace it",
            )
        shutil.rmtree(directory)
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (directory / "data" / "incoming").mkdir(parents=True, exist_ok=True)


def split_months(hour_csv: Path, folder: Path) -> list[tuple[str, Path]]:
    """Cut the raw file into one CSV per month, bytes untouched (header repeated)."""
    folder.mkdir(parents=True, exist_ok=True)
    with hour_csv.open("rb") as fh:
        header = fh.readline()
        columns = header.decode().strip().split(",")
        date_at = columns.index("dteday")
        groups: dict[str, list[bytes]] = {}
        for line in fh:
            if not line.strip():
                continue
            month = line.split(b",")[date_at][:7].decode()
            groups.setdefault(month, []).append(line)
    out = []
    for month in sorted(groups):
        path = folder / f"{month}.csv"
        path.write_bytes(header + b"".join(groups[month]))
        out.append((month, path))
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`gyre serve` in its own process, as an operator would run it."""

    def __init__(self, project: Path, port: int, poll_interval: float) -> None:
        self.project = project
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = project / ".gyre" / "server.log"
        command = [
            sys.executable,
            "-m",
            "gyre",
            "serve",
            ENDPOINT,
            "--project",
            str(project),
            "--port",
            str(port),
            "--poll-interval",
            str(poll_interval),
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )

    def wait_ready(self, client: httpx.Client, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(
                    f"the model server exited with status {self.process.returncode}",
                    hint=f"see {self.log_path}",
                )
            try:
                if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise ServeError(
            f"the model server did not become ready in {timeout:.0f}s", hint=f"see {self.log_path}"
        )

    def served_version(self, client: httpx.Client) -> int | None:
        text = client.get(f"{self.url}/metrics").text
        for line in text.splitlines():
            if line.startswith("gyre_served_model_version{"):
                return int(float(line.rsplit(" ", 1)[1]))
        return None

    def wait_for_version(self, client: httpx.Client, version: int, timeout: float = 30.0) -> float:
        """Seconds until the server serves ``version`` (it polls the alias; no restart)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.served_version(client) == version:
                return time.monotonic() - start
            time.sleep(0.05)
        raise ServeError(
            f"the server did not pick up version {version} within {timeout:.0f}s",
            hint=f"see {self.log_path}",
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def month_features(ctx: StageContext, path: Path) -> pa.Table:
    """What a client would send: the month's rows through the contract and the features SQL."""
    from gyre.ingest.contract import load_contract
    from gyre.ingest.csv_batch import ingest_batch
    from gyre.prepare.sql import run_sql

    source = ctx.config.source(SOURCE)
    if source.contract is None:
        raise WorkspaceError(f"the demo's source '{SOURCE}' needs a contract in gyre.yaml")
    contract = load_contract(ctx.config.resolve(source.contract))
    batch = ingest_batch(path, contract, quarantine_limit=1.0, display_name=path.name)
    dataset = ctx.config.dataset(ctx.config.model(MODEL).data)
    query = (
        ctx.config.resolve(dataset.sql).read_text(encoding="utf-8")
        if dataset.sql
        else dataset.query or ""
    )
    return run_sql(query, {SOURCE: batch.accepted_table}, source=str(dataset.sql))


def replay_month(
    client: httpx.Client,
    server: ServerProcess,
    features: pa.Table,
    inputs: list[dict[str, Any]],
    target: str,
    time_column: str,
) -> pa.Table:
    """One request per day; returns the feedback labels (request id, row, label)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    request_ids: list[str] = []
    rows: list[int] = []
    labels: list[float] = []
    for day in pc.unique(features[time_column]).to_pylist():
        daily = features.filter(pc.equal(features[time_column], pa.scalar(day)))
        body = {
            "inputs": [
                {
                    "name": spec["name"],
                    "shape": [daily.num_rows],
                    "datatype": spec["datatype"],
                    "data": daily[spec["name"]].to_pylist(),
                }
                for spec in inputs
            ]
        }
        response = client.post(f"{server.url}/v2/models/{ENDPOINT}/infer", json=body)
        if response.status_code != 200:
            raise ServeError(
                f"inference for {day} failed: HTTP {response.status_code} {response.text[:300]}"
            )
        request_id = response.json()["id"]
        truth = daily[target].to_pylist()
        request_ids.extend([request_id] * len(truth))
        rows.extend(range(len(truth)))
        labels.extend(float(v) for v in truth)
    return pa.table(
        {
            "request_id": pa.array(request_ids, pa.string()),
            "row": pa.array(rows, pa.int64()),
            "label": pa.array(labels, pa.float64()),
        }
    )


def run_demo(options: DemoOptions, progress: Progress | None = None) -> dict[str, Any]:
    import httpx

    from gyre.core.context import open_context
    from gyre.core.settings import Settings, WorkspacePaths
    from gyre.ingest.sources import options_checks
    from gyre.loop.demo_data import locate
    from gyre.loop.demo_summary import evaluate_versions, summarise
    from gyre.loop.pipeline import refresh_data, release
    from gyre.loop.retrain import PolicyState, apply_retrain_policy
    from gyre.monitor.feedback import FeedbackLog
    from gyre.monitor.inference_log import InferenceLog
    from gyre.monitor.run import check_window
    from gyre.train import known_trainers

    started = time.monotonic()
    hour_csv = locate(options.data)
    directory = options.directory.resolve()
    create_project(directory, force=options.force)
    months = split_months(hour_csv, directory / "data" / "months")
    if len(months) <= options.first_months:
        raise WorkspaceError(
            f"the data has {len(months)} months; need more than {options.first_months}"
        )
    paths = WorkspacePaths(root=directory)
    ctx = open_context(
        paths,
        Settings.resolve(paths),
        known_trainers=known_trainers(),
        source_types=options_checks(),
        progress=progress,
    )
    feedback = FeedbackLog(paths.feedback_logs, InferenceLog(paths.inference_logs))
    say = ctx.progress.log
    incoming = directory / "data" / "incoming"

    def arrive(path: Path) -> None:
        shutil.copy2(path, incoming / path.name)

    for _, path in months[: options.first_months]:
        arrive(path)
    say(f"[bold]1-2.[/] ingesting {options.first_months} monthly batches and building features")
    ingested, prepared = refresh_data(ctx)
    say(
        f"[bold]3-4.[/] training {MODEL} on {months[0][0]}..{months[options.first_months - 1][0]}"
        ", gating and promoting"
    )
    first = release(ctx, MODEL, reason="initial release")
    if first.promotion is None:
        raise WorkspaceError(f"the first model did not pass its gates: {first.refusal}")
    model_cfg = ctx.config.model(MODEL)
    time_column = model_cfg.time_column or "dteday"

    port = options.port or _free_port()
    say(f"[bold]5.[/] starting `gyre serve {ENDPOINT}` on 127.0.0.1:{port}")
    server = ServerProcess(directory, port, options.poll_interval)
    state = PolicyState.fresh()
    month_rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(timeout=30.0) as client:
            server.wait_ready(client)
            inputs = client.get(f"{server.url}/v2/models/{ENDPOINT}").json()["inputs"]
            task = ctx.progress.task("replaying months", total=len(months) - options.first_months)
            for label, path in months[options.first_months :]:
                features = month_features(ctx, path)
                window_start = datetime.now(UTC)
                labels = replay_month(
                    client, server, features, inputs, model_cfg.target, time_column
                )
                client.post(f"{server.url}/api/logs/flush").raise_for_status()
                window_end = datetime.now(UTC) + timedelta(microseconds=1)
                feedback.append(labels)
                report = check_window(ctx, MONITOR, start=window_start, end=window_end, label=label)
                arrive(path)  # the month's actuals land as a new batch
                decision = apply_retrain_policy(ctx, report, state)
                swap = None
                if decision.release and decision.release.promotion:
                    swap = server.wait_for_version(client, decision.release.promotion.version)
                month_rows.append({"report": report, "decision": decision, "swap_seconds": swap})
                ratio = f"{report.ratio:.2f}x" if report.ratio is not None else "n/a"
                say(
                    f"  {label}: served by {report.model_version}, {report.metric} "
                    f"{report.value or 0:.1f} ({ratio} of validation), "
                    f"{len(report.drifted_features)} drifted feature(s), "
                    f"{len(report.alerts)} alert(s) -> {decision.action}"
                )
                task.advance()
            task.close()
    finally:
        server.stop()
    refresh_data(ctx)
    say("[bold]7.[/] scoring every model version on the months that followed its training")
    evaluations = evaluate_versions(ctx, MODEL)
    summary = summarise(
        ctx,
        hour_csv=hour_csv,
        ingested=ingested,
        prepared=prepared,
        first=first,
        months=month_rows,
        evaluations=evaluations,
        seconds=time.monotonic() - started,
    )
    ctx.store.dispose()
    return summary
