"""Commands that show what is stored: datasets, runs, models, lineage, audit, alerts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gyre.cli.output import console, print_json, short, table, when

if TYPE_CHECKING:
    from gyre.core.lineage import Direction
    from gyre.workspace import Workspace

JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
JSON_ROWS = 1000  # rows `datasets show --json` includes unless --head says otherwise
PROJECT = typer.Option(Path(), "--project", "-p", help="Project folder (default: here).")


def _ws(project: Path) -> Workspace:
    from gyre.workspace import Workspace

    return Workspace.open(project)


datasets_app = typer.Typer(help="Inspect dataset versions.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs (every step Gyre executed).", no_args_is_help=True)
models_app = typer.Typer(help="Inspect registered models and versions.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Read and verify the tamper-evident audit trail.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts raised by monitors.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Rows contracts refused: list, inspect, replay after a fix.", no_args_is_help=True
)


@quarantine_app.command("list")
def quarantine_list(json: bool = JSON, project: Path = PROJECT) -> None:
    """Sources with refused rows: counts by rule and by file."""
    found = _ws(project).quarantine()
    if json:
        print_json([s.as_dict() for s in found])
        return
    table(
        "Quarantine",
        ["source", "version", "rows", "records", "top rules", "files"],
        [
            (
                s.source,
                s.version,
                s.rows,
                s.records,
                ", ".join(f"{k} ({v})" for k, v in list(s.by_rule.items())[:3]),
                len(s.files),
            )
            for s in found
        ],
    )


@quarantine_app.command("show")
def quarantine_show(
    source: str = typer.Argument(..., help="A source declared in gyre.yaml."),
    limit: int = typer.Option(50, help="How many records (0 = all)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """The refused rows of a source: file, line, column, rule, value and reason."""
    records = _ws(project).quarantine_records(source, limit=limit or None)
    if json:
        print_json(records.to_pylist())
        return
    table(
        f"{source}.quarantine",
        ["file", "line", "column", "rule", "value", "reason"],
        [
            (r["file"], r["line"], r["column"], r["rule"], short(r["value"], 30), r["reason"])
            for r in records.to_pylist()
        ],
    )


@quarantine_app.command("replay")
def quarantine_replay(
    source: str = typer.Argument(..., help="A source declared in gyre.yaml."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Hold refused rows to the current contract again; rows that pass join the source."""
    report = _ws(project).replay_quarantine(source)
    if json:
        print_json(report.as_dict())
        return
    console.print(
        f"replayed {report.replayed} row(s) of {source}: {report.accepted} accepted into "
        f"{report.dataset_version or '(no new version)'}, {report.still_quarantined} still "
        f"refused ({report.quarantine_version})"
        + (
            f"; {report.not_replayable} unreadable row(s) need a corrected file"
            if report.not_replayable
            else ""
        )
    )


@datasets_app.command("list")
def datasets_list(json: bool = JSON, project: Path = PROJECT) -> None:
    """Every dataset with its latest version."""
    rows = _ws(project).datasets()
    if json:
        print_json(
            [{"dataset": d.as_dict(), "latest": v.as_dict() if v else None} for d, v in rows]
        )
        return
    table(
        "Datasets",
        ["name", "kind", "latest", "rows", "content id", "created"],
        [
            (
                d.name,
                d.kind,
                v.version if v else "-",
                v.row_count if v else "",
                short(v.content_id if v else None, 15),
                when(v.created_at if v else None),
            )
            for d, v in rows
        ],
    )


@datasets_app.command("show")
def datasets_show(
    ref: str = typer.Argument(..., help="NAME (latest version) or NAME@VERSION."),
    head: int = typer.Option(
        None,
        "--head",
        "-n",
        help="Also print the first N rows (with --json: default 1000, 0 for none).",
    ),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """One dataset version: schema, profile, accounting, and optionally its first rows."""
    ws = _ws(project)
    version = ws.dataset(ref)
    record = version.record
    if json:
        limit = JSON_ROWS if head is None else head
        out: dict[str, Any] = record.as_dict()
        out["versions"] = [v.version for v in ws.dataset_versions(record.dataset)]
        if limit:
            out["rows"] = ws.read_dataset(ref, head=limit).to_pylist()
            out["rows_truncated"] = record.row_count > limit
        print_json(out)
        return
    rows = ws.read_dataset(ref, head=head).to_pylist() if head else None
    console.print(
        f"[bold]{record.ref}[/]  {record.row_count} rows  {record.content_id}\n"
        f"created {when(record.created_at)}  run {short(record.run_id, 8)}"
    )
    if record.stats:
        console.print("accounting: " + ", ".join(f"{k}={v}" for k, v in record.stats.items()))
    profile = {c["name"]: c for c in (record.profile or {}).get("columns", [])}
    table(
        None,
        ["column", "type", "nulls", "min", "max", "mean"],
        [
            (
                col["name"],
                col["type"],
                profile.get(col["name"], {}).get("null_count"),
                _fmt(profile.get(col["name"], {}).get("min")),
                _fmt(profile.get(col["name"], {}).get("max")),
                _fmt(profile.get(col["name"], {}).get("mean")),
            )
            for col in record.schema
        ],
    )
    if rows:
        table(f"first {len(rows)} rows", list(rows[0]), [list(r.values()) for r in rows])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@runs_app.command("list")
def runs_list(
    kind: str = typer.Option(None, help="Only runs of this kind (ingest, prepare, train, ...)."),
    limit: int = typer.Option(30, help="How many of the newest runs."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """The newest runs first."""
    runs = _ws(project).runs(kind=kind, limit=limit)
    if json:
        print_json([r.as_dict() for r in runs])
        return
    table(
        "Runs",
        ["id", "kind", "job", "status", "started", "metrics"],
        [
            (
                short(r.id, 8),
                r.kind,
                r.job,
                r.status,
                when(r.started_at),
                ", ".join(f"{k}={_fmt(v)}" for k, v in list(r.metrics.items())[:4]),
            )
            for r in runs
        ],
    )


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """One run: params, metrics, environment, inputs and outputs."""
    record, edges = _ws(project).run(run_id)
    if json:
        print_json({**record.as_dict(), "inputs": edges["input"], "outputs": edges["output"]})
        return
    console.print(f"[bold]run {record.id}[/]  {record.kind} {record.job}  ({record.status})")
    console.print(f"started {when(record.started_at)}  ended {when(record.ended_at)}")
    if record.error:
        console.print(f"[red]error:[/] {record.error}")
    for label, values in (("params", record.params), ("metrics", record.metrics)):
        if values:
            console.print(f"{label}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
    for label in ("input", "output"):
        for node in edges[label]:
            console.print(f"  {label:6} {node}")


@models_app.command("list")
def models_list(json: bool = JSON, project: Path = PROJECT) -> None:
    """Every model with its latest version and aliases."""
    ws = _ws(project)
    latest = ws.models()
    if json:
        print_json([m.as_dict() for m in latest])
        return
    table(
        "Models",
        ["model", "latest", "champion", "flavor", "metrics", "created"],
        [
            (
                m.model,
                m.version,
                _champion(ws, m.model),
                m.flavor,
                ", ".join(f"{k}={_fmt(v)}" for k, v in list(m.metrics.items())[:3]),
                when(m.created_at),
            )
            for m in latest
        ],
    )


def _champion(ws: Workspace, model: str) -> str:
    current = ws.store.models.alias(model, "champion")
    return str(current.version) if current else "-"


@models_app.command("show")
def models_show(
    ref: str = typer.Argument(..., help="NAME (all versions) or NAME:VERSION."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """A model's versions, or one version with its gate results and approvals."""
    ws = _ws(project)
    versions = ws.model(ref)
    if json:
        out = []
        for v in versions:
            item = v.as_dict()
            item["gates"] = [g.as_dict() for g in ws.store.models.gate_results(v)]
            item["approvals"] = [a.as_dict() for a in ws.store.models.approvals(v)]
            out.append(item)
        print_json(out if ":" not in ref else out[0])
        return
    table(
        f"Model {versions[0].model}" if versions else "Model",
        ["version", "aliases", "flavor", "metrics", "run", "package", "created"],
        [
            (
                v.version,
                ",".join(v.aliases),
                v.flavor,
                ", ".join(f"{k}={_fmt(val)}" for k, val in v.metrics.items()),
                short(v.run_id, 8),
                short(v.package_id, 15),
                when(v.created_at),
            )
            for v in versions
        ],
    )
    if len(versions) == 1:
        for gate in ws.store.models.gate_results(versions[0]):
            state = "[green]passed[/]" if gate.passed else "[red]failed[/]"
            console.print(f"gate {gate.suite}: {state}")
            for result in gate.results:
                console.print(f"  {result.get('reason', result)}")
        for approval in ws.store.models.approvals(versions[0]):
            console.print(
                f"{approval.decision} by {approval.actor} {when(approval.created_at)}: "
                f"{approval.reason}"
            )


def lineage(
    ref: str = typer.Argument(
        ..., help="dataset NAME@N, model NAME:N, or endpoint:NAME (also dataset:/model: prefixes)."
    ),
    upstream: bool = typer.Option(False, "--upstream", help="Only what REF was made from."),
    downstream: bool = typer.Option(False, "--downstream", help="Only what was made from REF."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Print the lineage graph of a dataset version, model version or endpoint."""
    from gyre.core.errors import UsageError

    if upstream and downstream:
        raise UsageError("--upstream and --downstream together is the default; give neither")
    direction: Direction = "upstream" if upstream else "downstream" if downstream else "both"
    graph = _ws(project).lineage(ref, direction=direction)
    if json:
        print_json(graph.as_dict())
        return
    from gyre.cli.lineage_view import render_tree

    console.print(render_tree(graph, direction))


@audit_app.command("list")
def audit_list(
    limit: int = typer.Option(50, help="How many of the newest events (0 = all)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """The audit trail, oldest of the selection first."""
    events = _ws(project).audit_events(limit=limit or None)
    if json:
        print_json([e.as_dict() for e in events])
        return
    table(
        "Audit trail",
        ["#", "time", "actor", "action", "entity", "hash"],
        [(e.seq, e.time, e.actor, e.action, e.entity, short(e.hash, 10)) for e in events],
    )


@audit_app.command("verify")
def audit_verify(json: bool = JSON, project: Path = PROJECT) -> None:
    """Check the hash chain; exit 1 naming the first event that was edited, deleted or moved."""
    checked, problem = _ws(project).verify_audit()
    if json:
        print_json(
            {
                "ok": problem is None,
                "events_checked": checked,
                "first_bad_event": problem.seq if problem else None,
                "reason": problem.reason if problem else None,
            }
        )
    elif problem is None:
        console.print(f"[green]audit trail intact[/]: {checked} events verified")
    else:
        console.print(f"[bold red]audit trail broken at event #{problem.seq}[/]: {problem.reason}")
    if problem is not None:
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    status: str = typer.Option(None, help="open, resolved..."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Alerts raised by monitors, with the action taken."""
    alerts = _ws(project).alerts(status=status)
    if json:
        print_json([a.as_dict() for a in alerts])
        return
    table(
        "Alerts",
        ["#", "monitor", "kind", "window", "status", "action", "message"],
        [(a.id, a.monitor, a.kind, a.window, a.status, a.action, a.message) for a in alerts],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")
    app.add_typer(audit_app, name="audit")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(quarantine_app, name="quarantine")
    app.command("lineage")(lineage)
