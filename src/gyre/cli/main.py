"""The `gyre` command: one Typer app, command modules loaded as they are needed.

Every command calls one :class:`gyre.Workspace` method. Known errors (``GyreError``) become one
red line on stderr and exit status 1 (2 for usage errors); ``--debug`` shows the traceback.
Heavy libraries are imported inside command bodies so ``gyre --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
import traceback

# Arrow's allocator (mimalloc) hands freed pages back to the system after 10 ms by default, and
# a command that allocates and frees big buffers in a loop (a 5M-row ingest) then spends seconds
# faulting them in again: 12.5 s instead of 10.8 s, with 450k page faults instead of 300k, for
# 100 MB more peak memory. Pages are still reused within the process. Read when Arrow loads,
# which no command has done yet; a value already in the environment wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
# Nor does it ask for transparent huge pages: each first touch of one clears 2 MiB, and on the
# bench machine a 5M-row ingest spent a third less time in the kernel with 4 KiB pages
# (2.4 s instead of 3.3 s of system time, 0.3 s less wall time, over three runs each).
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

import typer

from gyre import __version__
from gyre.cli import ingest_history, inspect_cmds, stage_cmds
from gyre.core.errors import GyreError

app = typer.Typer(
    name="gyre",
    help=(
        "Gyre runs the whole life of an AI application as one closed loop: "
        "ingest -> prepare -> train -> validate -> deploy -> monitor -> retrain.\n\n"
        "Start with `gyre demo` (the whole loop on real data) or `gyre init` (a new project)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": os.environ.get("GYRE_DEBUG") == "1"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gyre {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if debug:
        _state["debug"] = True


stage_cmds.register(app)
inspect_cmds.register(app)
ingest_history.register(app)


def main() -> None:
    """Console-script entry point with Gyre's error handling."""
    try:
        app()
    except GyreError as exc:
        from gyre.cli.output import err_console

        if _state["debug"]:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
        if exc.hint:
            err_console.print(f"  [yellow]hint:[/] {exc.hint}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        _before_exit()


def _before_exit() -> None:
    """Collect the garbage now, so that its finalisers run, then freeze what is left: the
    interpreter's own collections at exit would walk every object of every module imported
    again, 0.2-0.3 s of each command (0.41 s between a 5M-row ingest's last line and the end
    of the process, 0.23 s with this). What is still alive is released as the modules go."""
    import gc

    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    main()
