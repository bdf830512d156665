"""What every stage receives: the project, its stores and a way to report progress.

Stages take a :class:`StageContext` instead of reaching for globals, so the same stage code
runs from the CLI, the Python API, tests and the loop controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gyre.core.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from gyre.core.artifacts import ArtifactStore
    from gyre.core.config import ProjectConfig
    from gyre.core.openlineage import LineageEmitter
    from gyre.core.settings import Settings, WorkspacePaths
    from gyre.core.store import MetadataStore


@dataclass
class StageContext:
    paths: WorkspacePaths
    config: ProjectConfig
    store: MetadataStore
    artifacts: ArtifactStore
    emitter: LineageEmitter
    progress: Progress = field(default_factory=SilentProgress)

    @property
    def project(self) -> str:
        return self.config.project


def open_context(
    paths: WorkspacePaths,
    settings: Settings,
    *,
    known_trainers: Iterable[str],
    source_types: Mapping[str, Callable[[Mapping[str, Any]], object]],
    progress: Progress | None = None,
) -> StageContext:
    """Load gyre.yaml and open the stores a project's settings point at."""
    from gyre.core.artifacts import ArtifactStore
    from gyre.core.config import load_project
    from gyre.core.openlineage import LineageEmitter
    from gyre.core.store import MetadataStore

    config = load_project(
        paths.config_file, known_trainers=known_trainers, known_source_types=source_types
    )
    paths.gyre_dir.mkdir(exist_ok=True)
    return StageContext(
        paths=paths,
        config=config,
        store=MetadataStore.open(settings.store_url),
        artifacts=ArtifactStore.from_url(settings.artifacts_url),
        emitter=LineageEmitter(paths.lineage_events, http_url=settings.lineage_url),
        progress=progress or SilentProgress(),
    )
