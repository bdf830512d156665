"""The serve stage: an Open Inference Protocol v2 server for one endpoint's current model.

FastAPI and uvicorn are imported only when an app is built or run: import
:mod:`gyre.serve.app` (``create_app``) and :mod:`gyre.serve.server` (``run_server``) directly,
or use the names re-exported here, which load them on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.serve.app import InferenceEvent, ModelRef, create_app
    from gyre.serve.server import run_server

__all__ = ["InferenceEvent", "ModelRef", "create_app", "run_server"]


def __getattr__(name: str) -> Any:
    if name in ("InferenceEvent", "ModelRef", "create_app"):
        from gyre.serve import app

        return getattr(app, name)
    if name == "run_server":
        from gyre.serve import server

        return server.run_server
    raise AttributeError(f"module 'gyre.serve' has no attribute '{name}'")
