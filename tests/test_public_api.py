"""The public surface: what `import gyre` offers, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import gyre

HEAVY = ("pyarrow", "duckdb", "sqlalchemy", "lightgbm", "sklearn", "scipy", "fastapi", "uvicorn")


def test_exported_members() -> None:
    assert sorted(gyre.__all__) == ["Workspace", "__version__"]
    from gyre.workspace import Workspace

    assert gyre.Workspace is Workspace
    for method in (
        "init",
        "open",
        "ingest",
        "prepare",
        "train",
        "validate",
        "promote",
        "rollback",
        "approve",
        "serve",
        "feedback",
        "monitor",
        "lineage",
        "verify_audit",
        "datasets",
        "runs",
        "models",
    ):
        assert callable(getattr(Workspace, method)), method


def test_importing_gyre_and_its_cli_loads_no_heavy_library() -> None:
    code = (
        "import sys, gyre, gyre.cli.main\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
