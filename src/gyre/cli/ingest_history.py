"""``gyre ingest history SOURCE`` and ``gyre contract history SOURCE``: what a source's batches
did, the schema drift they met and the contract versions that checked them.

``gyre ingest`` takes one positional SOURCE (a declared source, or a file with ``--name``), so
the history form is recognised by its first word: ``gyre ingest history rentals`` (options both
forms share, such as ``--json``, may come before it). Everything else goes to the ingest command
unchanged. A source that is really named ``history`` is ingested with ``gyre ingest -- history``
(after ``--`` every word is an argument).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand

from gyre.cli.output import console, print_json, short, table, when

if TYPE_CHECKING:
    from gyre.ingest.history import ContractVersionEntry, IngestHistory

HISTORY = "history"
JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
PROJECT = typer.Option(Path(), "--project", "-p", help="Project folder (default: here).")

HISTORY_EPILOG = (
    "**History:** `gyre ingest history SOURCE [--limit N] [--json]` lists the source's "
    "batches (time, rows in, accepted, quarantined, deduplicated, dataset and contract "
    "version; refused batches with their error), the schema drift they caused and the "
    "source's contract versions. `gyre ingest history --help` says more. To ingest a source "
    "that is itself named `history`, write `gyre ingest -- history`."
)


def history(
    source: str = typer.Argument(..., help="A source declared in gyre.yaml (or a one-off name)."),
    limit: int = typer.Option(50, help="Show the latest N batches (0 = all)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """A source's batches, the schema drift they caused, and its contract versions.

    Each batch is one ingest (or replay) run: when it ran, its file or label, whether it was
    committed or refused (and why), rows in = accepted + quarantined + deduplicated, the
    dataset version it made and the contract version that checked it. Drift events say what
    changed (new column, missing column, type), the schema_drift mode and what was done.
    """
    from gyre.workspace import Workspace

    ws = Workspace.open(project)
    try:
        found = ws.ingest_history(source, limit=limit or None)
    finally:
        ws.close()
    if json:
        print_json(found.as_dict())
        return
    show_history(found)


def show_history(found: IngestHistory) -> None:
    committed = sum(b.status == "committed" for b in found.batches)
    latest = found.contract_versions[-1] if found.contract_versions else None
    contract = f", contract version {latest.version} ({latest.origin})" if latest else ""
    console.print(
        f"[bold]{found.source}[/]: {len(found.batches)} batch(es) shown, {committed} committed"
        f"{' (older ones left out: --limit 0 shows all)' if found.truncated else ''}, "
        f"{len(found.drift_events)} drift event(s){contract}"
    )
    table(
        "Batches",
        [
            "time",
            "batch",
            "status",
            "in",
            "accepted",
            "quarantined",
            "dedup",
            "version",
            "contract",
        ],
        [
            (
                when(b.time),
                b.batch,
                b.status,
                b.rows_in,
                b.accepted,
                b.quarantined,
                b.deduplicated,
                f"{found.source}@{b.dataset_version}" if b.dataset_version else None,
                b.contract_version,
            )
            for b in found.batches
        ],
    )
    for b in found.batches:
        if b.error:
            console.print(
                f"[red]{b.status}[/] {b.batch}: {b.error.splitlines()[0]}", soft_wrap=True
            )
    if found.drift_events:
        table(
            "Schema drift",
            ["version", "batch", "change", "column", "type", "mode", "what happened"],
            [
                (
                    e.dataset_version,
                    e.batch,
                    e.change.replace("_", " "),
                    e.column,
                    _types(e.old_type, e.new_type),
                    e.mode,
                    e.detail,
                )
                for e in found.drift_events
            ],
        )
    show_contract_versions(found.contract_versions)


def _types(old: str | None, new: str | None) -> str:
    if old and new:
        return f"{old} -> {new}"
    return old or new or ""


def show_contract_versions(versions: list[ContractVersionEntry]) -> None:
    if not versions:
        return
    table(
        "Contract versions",
        ["version", "origin", "created", "content id", "changes"],
        [
            (
                v.version,
                v.origin,
                when(v.created_at),
                short(v.content_id, 15),
                "\n".join(v.changes),
            )
            for v in versions
        ],
    )


def contract_history(
    source: str = typer.Argument(..., help="A source declared in gyre.yaml (or a one-off name)."),
    json: bool = JSON,
    project: Path = PROJECT,
) -> None:
    """Every version of a source's contract: when, from the file or evolved by schema drift,
    and what changed column by column."""
    from gyre.workspace import Workspace

    ws = Workspace.open(project)
    try:
        versions = ws.contract_history(source)
    finally:
        ws.close()
    if json:
        print_json([v.as_dict() for v in versions])
        return
    if not versions:
        console.print(f"source '{source}' has not been checked against a contract yet")
        return
    show_contract_versions(versions)


def _history_command() -> Any:
    app = typer.Typer(rich_markup_mode="markdown", add_completion=False)
    app.command(HISTORY)(history)
    return typer.main.get_command(app)


class IngestCommand(TyperCommand):
    """The ``ingest`` command, which hands ``gyre ingest history ...`` to :func:`history`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epilog = HISTORY_EPILOG

    # Click's types are left as Any: Typer vendors Click in some versions and not in others.
    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        rest = history_args(args)
        if rest is not None:
            command = _history_command()
            name = f"{info_name} {HISTORY}" if info_name else HISTORY
            return command.make_context(name, rest, parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


# Options both forms take, so `gyre ingest --json history rentals` is the history form too.
_SHARED_FLAGS = ("--json",)
_SHARED_VALUED = ("--project", "-p", "--limit")


def history_args(args: list[str]) -> list[str] | None:
    """The history command's arguments when ``args`` (after ``ingest``) ask for it, else None.

    ``history`` must be the first argument that is not one of the options both forms share;
    ``--`` before it means a source named ``history``.
    """
    i = 0
    while i < len(args):
        word = args[i]
        if word == HISTORY:
            return args[:i] + args[i + 1 :]
        if word in _SHARED_FLAGS or word.startswith(tuple(f"{o}=" for o in _SHARED_VALUED)):
            i += 1
        elif word in _SHARED_VALUED:
            i += 2
        else:
            return None
    return None


def register(app: typer.Typer) -> None:
    """Add ``gyre contract history`` (the ingest command takes ``cls=IngestCommand``)."""
    from gyre.cli.stage_cmds import contract_app

    contract_app.command(HISTORY)(contract_history)
