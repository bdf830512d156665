"""Commands that do work: init, demo, ingest, prepare, train, validate, deploy, serve..."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gyre.cli.output import console, print_json, table

if TYPE_CHECKING:
    from gyre.ingest.run import BatchReport
    from gyre.workspace import Workspace

JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
PROJECT = typer.Option(Path(), "--project", "-p", help="Project folder (default: here).")


@contextmanager
def _workspace(project: Path, *, quiet: bool = False) -> Iterator[Workspace]:
    """Open the project with Rich progress bars (silent with --json, to keep stdout clean)."""
    from gyre.workspace import Workspace

    if quiet:
        ws = Workspace.open(project)
        try:
            yield ws
        finally:
            ws.close()
        return
    from gyre.cli.progress import RichProgress

    with RichProgress() as progress:
        ws = Workspace.open(project, progress=progress)
        try:
            yield ws
        finally:
            ws.close()


def init(
    directory: Path = typer.Argument(Path(), help="Folder for the new project."),
    name: str = typer.Option(None, help="Project name (default: the folder name)."),
) -> None:
    """Create a project: a commented gyre.yaml and the .gyre/ folder (store, objects)."""
    from gyre.workspace import Workspace

    ws = Workspace.init(directory, name=name)
    console.print(f"[green]created[/] {ws.paths.config_file}")
    console.print(f"store     {ws.store.url}\nartifacts {ws.artifacts.url}")
    console.print("next: declare a source in gyre.yaml, then `gyre ingest --all`")


def demo(
    directory: Path = typer.Argument(Path("gyre-demo"), help="Folder to create the demo in."),
    data: Path = typer.Option(
        None, "--data", help="Folder with the UCI bike-sharing hour.csv (else downloaded once)."
    ),
    first_months: int = typer.Option(6, help="Months used to train the first model."),
    port: int = typer.Option(None, help="Port for the model server (default: a free one)."),
    force: bool = typer.Option(False, "--force", help="Replace DIRECTORY if it is not empty."),
    json: bool = JSON,
) -> None:
    """Run the whole loop on two years of real bike-rental data.

    Ingest monthly batches through a contract, build features with SQL, train LightGBM, gate
    and promote it, serve it over HTTP, replay later months as requests, watch drift and error,
    and retrain when the error crosses its threshold: the server picks up the new champion
    without a restart. Everything lands in the store, the lineage graph and the audit trail.
    """
    from gyre.loop.demo import DemoOptions, run_demo

    options = DemoOptions(
        directory=directory, data=data, first_months=first_months, port=port, force=force
    )
    if json:
        print_json(run_demo(options))
        return
    from gyre.cli.demo_view import show_summary
    from gyre.cli.progress import RichProgress

    with RichProgress() as progress:
        summary = run_demo(options, progress)
    show_summary(summary)


def ingest(
    source: str = typer.Argument(
        None, help="A source declared in gyre.yaml, or a file, glob or URL (with --name)."
    ),
    all_sources: bool = typer.Option(False, "--all", help="Ingest every declared source."),
    name: str = typer.Option(
        None, "--name", "-n", help="Dataset to ingest a file/URL into (the one-off form)."
    ),
    contract: Path = typer.Option(
        None, "--contract", "-c", help="Contract for the one-off form (YAML).", exists=True
    ),
    quarantine_limit: float = typer.Option(
        0.05, min=0.0, max=1.0, help="One-off form: refuse a batch above this refused share."
    ),
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Keep ingesting until Ctrl-C or SIGTERM: a stream commits a version per "
        "micro-batch; a file or SQL source is polled every poll_seconds.",
    ),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Ingest new batches through the contract (bad rows go to quarantine, counted).

    `gyre ingest rentals` ingests a declared source; `gyre ingest --all` every one;
    `gyre ingest data/orders.csv --name orders [--contract orders.yaml]` a file, glob or URL;
    `gyre ingest sensors --follow` runs a stream (MQTT, NATS, Redis, Kafka) or polls a source
    until Ctrl-C or SIGTERM.
    Each batch reports rows in = accepted + quarantined + deduplicated.
    """
    from gyre.core.errors import UsageError

    if bool(source) == all_sources:
        raise UsageError("name one SOURCE (or a file with --name) or pass --all")
    if contract is not None and name is None:
        raise UsageError("--contract goes with the one-off form: PATH --name NAME")
    if follow:
        if all_sources or name is not None:
            raise UsageError("--follow takes one declared SOURCE: gyre ingest SOURCE --follow")
        _follow(source, json=json, project=project)
        return
    with _workspace(project, quiet=json) as ws:
        if name is not None:
            reports = [
                ws.ingest_path(
                    source, name=name, contract=contract, quarantine_limit=quarantine_limit
                )
            ]
        else:
            reports = ws.ingest(None if all_sources else source)
    if not reports and not json:
        console.print("no sources declared in gyre.yaml (see the `sources:` section)")
    if json:
        print_json([r.as_dict() for r in reports])
        return
    for report in reports:
        table(
            f"{report.source}: {report.rows_in} rows in = {report.accepted} accepted + "
            f"{report.quarantined} quarantined + {report.deduplicated} deduplicated",
            ["file", "rows in", "accepted", "quarantined", "version"],
            [
                (b.file, b.rows_in, b.accepted, b.quarantined, b.dataset_version)
                for b in report.batches
            ],
        )
        for batch in report.batches:
            if batch.refused:
                console.print(_refused_line(report.source, batch))
            for event in batch.schema_drift:
                if event["change"] == "new_table":
                    continue  # the first batch creating the dataset is not news
                console.print(f"schema drift in {batch.file}: {_drift_line(event)}")
        if report.skipped:
            console.print(f"skipped {len(report.skipped)} file(s) already ingested")
        if report.changed:
            console.print(
                f"[yellow]warning:[/yellow] {len(report.changed)} file(s) changed after they "
                f"were ingested and were not ingested again: {', '.join(report.changed[:5])}"
                + (" ..." if len(report.changed) > 5 else "")
                + "; drop corrected data under a new file name"
            )


def _refused_line(source: str, batch: BatchReport) -> str:
    """A batch quarantined whole (``on_refused_batch: quarantine``): loud, with the way back."""
    return (
        f"[red]refused:[/red] {batch.file}: all {batch.rows_in} rows quarantined because the "
        f"batch was refused as a whole ({batch.refused}); fix the contract or the data, then "
        f"`gyre quarantine replay {source}`"
    )


def _drift_line(event: dict[str, Any]) -> str:
    """One drift event as a person reads it: what changed, then the mode and what it did."""
    column = f"column {event['column']}: " if event.get("column") else ""
    return f"{column}{event['detail']} ({event['mode']}: {event['action'].replace('_', ' ')})"


def _follow(source: str, *, json: bool, project: Path) -> None:
    """Run ``source`` until Ctrl-C or SIGTERM; each committed batch is printed as it lands."""
    import signal
    import threading

    stop = threading.Event()

    def ask_to_stop(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now; the uncommitted batch is redelivered
            raise KeyboardInterrupt
        stop.set()
        if not json:
            console.print("stopping: committing the batch in hand (Ctrl-C again to abandon it)")

    def show(batch: BatchReport) -> None:
        if json:
            print_json(batch.as_dict())
        else:
            console.print(
                f"{batch.dataset_version}: {batch.rows_in} in = {batch.accepted} accepted + "
                f"{batch.quarantined} quarantined + {batch.deduplicated} deduplicated "
                f"[dim]({batch.file})[/dim]"
            )
            if batch.refused:
                console.print(_refused_line(source, batch))

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _workspace(project, quiet=True) as ws:
            if not json:
                console.print(f"following {source} (Ctrl-C or SIGTERM stops it cleanly)")
            report = ws.follow(source, stop=stop, on_batch=show)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not json:
        console.print(
            f"{report.source}: {report.rows_in} rows in = {report.accepted} accepted + "
            f"{report.quarantined} quarantined + {report.deduplicated} deduplicated "
            f"in {len(report.batches)} batch(es)"
        )


def prepare(
    dataset: str = typer.Argument(None, help="A derived dataset (default: all, in order)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Rebuild derived datasets with their SQL (unchanged inputs reuse the last version)."""
    with _workspace(project, quiet=json) as ws:
        reports = ws.prepare(dataset)
    if json:
        print_json([r.as_dict() for r in reports])
        return
    for r in reports:
        state = "unchanged" if r.cached else "new version"
        console.print(
            f"{r.version.ref}: {r.version.record.row_count} rows ({state}) from "
            + ", ".join(r.inputs)
        )


def train(
    model: str = typer.Argument(..., help="A model declared in gyre.yaml."),
    window_days: int = typer.Option(None, help="Train only on the most recent N days."),
    release: bool = typer.Option(
        True, "--release/--no-release", help="Validate and promote if the gates pass."
    ),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Train a model version; by default also validate it and promote it if its gates pass."""
    from gyre.loop.pipeline import release as do_release

    with _workspace(project, quiet=json) as ws:
        if release:
            outcome = do_release(
                ws.context, model, window_days=window_days, reason="gyre train --release"
            )
            result: dict[str, Any] = outcome.as_dict()
        else:
            result = {"train": ws.train(model, window_days=window_days).as_dict()}
    if json:
        print_json(result)
        if release and result["promotion"] is None:
            raise typer.Exit(1)
        return
    trained = result["train"]
    console.print(
        f"trained [bold]{trained['model']}[/] on {trained['train_rows']} rows; "
        "validation " + _metrics(trained["metrics"])
    )
    if release:
        _show_validation(result["validation"])
        if result["promotion"]:
            p = result["promotion"]
            console.print(f"[green]promoted[/] {p['model']}:{p['version']} to {p['alias']}")
        else:
            console.print(f"[red]not promoted[/]: {result['refusal']}")
            raise typer.Exit(1)


def _metrics(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def _show_validation(report: dict[str, Any]) -> None:
    state = "[green]passed[/]" if report["passed"] else "[red]failed[/]"
    console.print(f"gates {state} for {report['model']}")
    for gate in report["gates"]:
        console.print(f"  {'✓' if gate['passed'] else '✗'} {gate['reason']}")


def validate(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME:VERSION."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Run a model version's gates (exit 1 if any fails)."""
    with _workspace(project, quiet=json) as ws:
        report = ws.validate(ref).as_dict()
    if json:
        print_json(report)
    else:
        _show_validation(report)
    if not report["passed"]:
        raise typer.Exit(1)


def deploy(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME:VERSION to release."),
    alias: str = typer.Option("champion", help="The alias to move."),
    reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the audit trail)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Point an alias (and the endpoints serving it) at a validated, approved version."""
    with _workspace(project, quiet=True) as ws:
        promotion = ws.promote(ref, alias=alias, reason=reason)
    if json:
        print_json(promotion.as_dict())
        return
    console.print(
        f"[green]{promotion.model}@{promotion.alias}[/] -> version "
        f"{promotion.version} (was {promotion.previous}); endpoints: "
        + (", ".join(promotion.endpoints) or "none")
    )


def rollback(
    endpoint: str = typer.Argument(..., help="The endpoint to roll back."),
    reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the audit trail)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Serve the version the endpoint served before the current one (takes effect at once)."""
    with _workspace(project, quiet=True) as ws:
        promotion = ws.rollback(endpoint, reason=reason)
    if json:
        print_json(promotion.as_dict())
        return
    console.print(
        f"[yellow]rolled back[/] {endpoint}: version {promotion.previous} -> {promotion.version}"
    )


def _approval(reject: bool) -> Any:
    def command(
        ref: str = typer.Argument(..., help="NAME:VERSION"),
        reason: str = typer.Option(..., "--reason", "-m", help="Why (kept in the audit trail)."),
        project: Path = PROJECT,
    ) -> None:
        with _workspace(project, quiet=True) as ws:
            record = ws.approve(ref, reason=reason, reject=reject)
        console.print(f"{record.decision} {ref} by {record.actor}")

    command.__doc__ = (
        "Reject a model version (it cannot be released)."
        if reject
        else "Approve a model version for release (where gyre.yaml requires approval)."
    )
    return command


def serve(
    endpoint: str = typer.Argument(..., help="An endpoint declared in gyre.yaml."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    poll_interval: float = typer.Option(
        1.0, help="Seconds between checks of the alias (new versions load without a restart)."
    ),
    project: Path = PROJECT,
) -> None:
    """Serve an endpoint over HTTP: Open Inference Protocol v2 at /v2, metrics at /metrics."""
    from gyre.cli.output import err_console
    from gyre.workspace import Workspace

    ws = Workspace.open(project)
    err_console.print(f"serving {endpoint} on http://{host}:{port}/v2/models/{endpoint}/infer")
    ws.serve(endpoint, host=host, port=port, poll_interval=poll_interval)


def feedback(
    endpoint: str = typer.Argument(..., help="The endpoint whose predictions are labelled."),
    file: Path = typer.Argument(
        ...,
        help="CSV or Parquet with columns request_id, label and optionally row.",
        exists=True,
        dir_okay=False,
    ),
    project: Path = PROJECT,
) -> None:
    """Attach true labels to logged predictions (by request id and row) for monitoring."""
    from gyre.core.errors import DataError

    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        labels = pq.read_table(file)
    else:
        import pyarrow.csv as pcsv

        try:
            labels = pcsv.read_csv(file)
        except Exception as exc:
            raise DataError(f"cannot read {file} as CSV: {exc}") from None
    missing = {"request_id", "label"} - set(labels.column_names)
    if missing:
        raise DataError(
            f"{file} lacks column(s) {', '.join(sorted(missing))}; it has "
            + ", ".join(labels.column_names),
            hint="feedback files need request_id (from the x-request-id header) and label",
        )
    with _workspace(project, quiet=True) as ws:
        count = ws.feedback(endpoint, labels)
    console.print(f"stored {count} label(s) for {endpoint}")


def monitor(
    name: str = typer.Argument(..., help="A monitor declared in gyre.yaml."),
    since: datetime = typer.Option(
        None,
        help="Window start (UTC), e.g. 2026-11-01T00:00. Default: the start of the current "
        "day, week or month, as the monitor's `window` in gyre.yaml says.",
    ),
    until: datetime = typer.Option(None, help="Window end (UTC, exclusive; default: now)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Check a window of served traffic for drift and error; raise alerts (exit 1 if any)."""
    from datetime import UTC
    from datetime import datetime as dt

    from gyre.monitor.run import window_start

    end = (until.replace(tzinfo=UTC) if until.tzinfo is None else until) if until else dt.now(UTC)
    with _workspace(project, quiet=True) as ws:
        if since is None:
            start = window_start(ws.config.monitor(name).window, end)
        else:
            start = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        report = ws.monitor(name, start=start, end=end, window=f"{start:%Y-%m-%d}..{end:%Y-%m-%d}")
    if json:
        print_json(report.as_dict())
    else:
        console.print(f"{report.predictions} predictions by {report.model_version or '-'}")
        if report.value is not None:
            ratio = f" ({report.ratio:.2f}x validation)" if report.ratio else ""
            console.print(
                f"{report.metric} {report.value:.4g} on {report.labelled} labelled rows{ratio}"
            )
        table(
            None,
            ["feature", "score", "drifted"],
            [(d["feature"], f"{d.get('score') or 0:.3f}", d["drifted"]) for d in report.drift],
        )
        for alert in report.alerts:
            console.print(f"[red]alert #{alert.id}[/] {alert.kind}: {alert.message}")
    if report.alerts:
        raise typer.Exit(1)


contract_app = typer.Typer(help="Contracts: infer one from data for review.", no_args_is_help=True)


@contract_app.command("infer")
def contract_infer(
    target: str = typer.Argument(..., help="A file source declared in gyre.yaml, or a file."),
    output: Path = typer.Option(None, "--output", "-o", help="Write here (default: print)."),
    sample_rows: int = typer.Option(None, help="Infer from the first N rows only."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUTPUT if it exists."),
    project: Path = PROJECT,
) -> None:
    """Infer a contract (types, nullability, ranges, small value sets) for a person to review."""
    from gyre.core.errors import UsageError
    from gyre.workspace import Workspace

    text = Workspace.open(project).infer_contract(target, sample_rows=sample_rows)
    if output is None:
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise UsageError(f"{output} exists; not overwriting it", hint="pass --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    console.print(f"wrote {output}: review it, then name it as the source's `contract:`")


def register(app: typer.Typer) -> None:
    from gyre.cli.ingest_history import IngestCommand  # `gyre ingest history SOURCE`

    app.command()(init)
    app.command()(demo)
    app.command(cls=IngestCommand)(ingest)
    app.command()(prepare)
    app.command()(train)
    app.command()(validate)
    app.command()(deploy)
    app.command()(rollback)
    app.command("approve")(_approval(reject=False))
    app.command("reject")(_approval(reject=True))
    app.command()(serve)
    app.command()(feedback)
    app.command()(monitor)
    app.add_typer(contract_app, name="contract")
