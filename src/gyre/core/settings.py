"""Where a workspace keeps things, and the few settings that move them elsewhere.

The embedded default puts everything under the project's ``.gyre/`` folder. Three environment
variables move pieces to shared infrastructure without touching gyre.yaml (so the same project
runs on a laptop and in production): ``GYRE_STORE_URL`` (metadata store, e.g.
``postgresql+psycopg://gyre@db/gyre``), ``GYRE_ARTIFACTS`` (artifact store, e.g.
``s3://bucket/prefix``) and ``GYRE_LINEAGE_URL`` (an OpenLineage HTTP endpoint such as
Marquez's ``http://marquez:5000/api/v1/lineage``). They are read once, into a frozen object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

GYRE_DIR = ".gyre"


class WorkspacePaths(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path

    @property
    def gyre_dir(self) -> Path:
        return self.root / GYRE_DIR

    @property
    def database(self) -> Path:
        return self.gyre_dir / "gyre.db"

    @property
    def objects(self) -> Path:
        return self.gyre_dir / "objects"

    @property
    def lineage_events(self) -> Path:
        return self.gyre_dir / "lineage" / "events.jsonl"

    @property
    def inference_logs(self) -> Path:
        return self.gyre_dir / "logs" / "inference"

    @property
    def feedback_logs(self) -> Path:
        return self.gyre_dir / "logs" / "feedback"

    @property
    def config_file(self) -> Path:
        return self.root / "gyre.yaml"


class Settings(BaseModel):
    """Resolved locations of the stores for one workspace."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_url: str
    artifacts_url: str
    lineage_url: str | None = None

    @classmethod
    def resolve(cls, paths: WorkspacePaths, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            store_url=env.get("GYRE_STORE_URL") or f"sqlite:///{paths.database}",
            artifacts_url=env.get("GYRE_ARTIFACTS") or str(paths.objects),
            lineage_url=env.get("GYRE_LINEAGE_URL") or None,
        )
