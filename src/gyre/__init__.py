"""Gyre: the whole life of an AI application as one closed loop.

    import gyre
    ws = gyre.Workspace.open(".")
    ws.ingest("rentals")

Heavy submodules load on first use, so ``import gyre`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Workspace", "__version__"]

if TYPE_CHECKING:
    from gyre.workspace import Workspace


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from gyre.workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'gyre' has no attribute {name!r}")
