"""``gyre.Workspace``: the Python API behind every CLI command.

    from gyre import Workspace

    ws = Workspace.init("my-project")          # writes gyre.yaml and .gyre/
    ws = Workspace.open("my-project")          # finds gyre.yaml, opens the stores
    ws.ingest("rentals")                       # -> list of IngestReport
    ws.prepare("features")                     # -> DatasetVersion
    result = ws.train("demand")                # trains, gates, registers, maybe promotes
    ws.lineage("endpoint:demand", direction="upstream")

Every method is one operation, so the CLI, tests and the loop controller behave alike. Stores
open lazily: reading gyre.yaml does not connect to anything.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gyre.core.errors import WorkspaceError
from gyre.core.progress import Progress, SilentProgress
from gyre.core.settings import Settings, WorkspacePaths

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from datetime import datetime

    import pyarrow as pa

    from gyre.core.artifacts import ArtifactStore
    from gyre.core.audit import AuditEvent, ChainProblem
    from gyre.core.config import ProjectConfig
    from gyre.core.context import StageContext
    from gyre.core.lineage import Direction, LineageGraph
    from gyre.core.store import MetadataStore
    from gyre.core.store.records import (
        AlertRecord,
        ApprovalRecord,
        DatasetRecord,
        DatasetVersionRecord,
        ModelVersionRecord,
        RunRecord,
    )
    from gyre.datasets.catalog import DatasetVersion
    from gyre.ingest.history import ContractVersionEntry, IngestHistory
    from gyre.ingest.quarantine import QuarantineSummary, ReplayReport
    from gyre.ingest.run import BatchReport, IngestReport
    from gyre.monitor.run import MonitorReport
    from gyre.prepare.run import PrepareReport
    from gyre.serve.deploy import Promotion
    from gyre.train.run import TrainReport
    from gyre.validate.run import ValidationReport


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding a gyre.yaml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "gyre.yaml").is_file():
            return folder
    raise WorkspaceError(
        f"no gyre.yaml in {start} or any folder above it",
        hint="run `gyre init` to create a project, or `cd` into one",
    )


class Workspace:
    """One Gyre project: its gyre.yaml, metadata store, artifact store and logs."""

    def __init__(
        self, root: Path, *, settings: Settings | None = None, progress: Progress | None = None
    ) -> None:
        self.paths = WorkspacePaths(root=root.resolve())
        self.settings = settings or Settings.resolve(self.paths)
        self.progress: Progress = progress or SilentProgress()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path = ".",
        *,
        settings: Settings | None = None,
        progress: Progress | None = None,
    ) -> Workspace:
        return cls(find_root(Path(path)), settings=settings, progress=progress)

    @classmethod
    def init(
        cls,
        path: str | Path = ".",
        *,
        name: str | None = None,
        settings: Settings | None = None,
        progress: Progress | None = None,
    ) -> Workspace:
        """Create gyre.yaml (commented template) and .gyre/ with an up-to-date store."""
        from gyre.core.project_template import write_template

        root = Path(path).resolve()
        root.mkdir(parents=True, exist_ok=True)
        write_template(root, name or root.name)
        ws = cls(root, settings=settings, progress=progress)
        ws.paths.gyre_dir.mkdir(exist_ok=True)
        ws.store  # noqa: B018 -- creating the store runs the migrations
        ws.artifacts  # noqa: B018
        return ws

    @classmethod
    def adopt(
        cls, root: str | Path, *, settings: Settings | None = None, progress: Progress | None = None
    ) -> Workspace:
        """Open a folder that already holds a gyre.yaml and make sure .gyre/ exists."""
        ws = cls(Path(root), settings=settings, progress=progress)
        if not ws.paths.config_file.is_file():
            raise WorkspaceError(f"{ws.paths.config_file} does not exist", hint="run `gyre init`")
        ws.paths.gyre_dir.mkdir(exist_ok=True)
        return ws

    @cached_property
    def config(self) -> ProjectConfig:
        from gyre.core.config import load_project
        from gyre.ingest.sources import options_checks
        from gyre.train import known_trainers

        return load_project(
            self.paths.config_file,
            known_trainers=known_trainers(),
            known_source_types=options_checks(),
        )

    @cached_property
    def store(self) -> MetadataStore:
        from gyre.core.store import MetadataStore

        self.paths.gyre_dir.mkdir(exist_ok=True)
        return MetadataStore.open(self.settings.store_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from gyre.core.artifacts import ArtifactStore

        return ArtifactStore.from_url(self.settings.artifacts_url)

    @cached_property
    def context(self) -> StageContext:
        from gyre.core.context import StageContext
        from gyre.core.openlineage import LineageEmitter

        emitter = LineageEmitter(self.paths.lineage_events, http_url=self.settings.lineage_url)
        return StageContext(
            paths=self.paths,
            config=self.config,
            store=self.store,
            artifacts=self.artifacts,
            emitter=emitter,
            progress=self.progress,
        )

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.dispose()

    # -- datasets --------------------------------------------------------------------------

    def datasets(self) -> list[tuple[DatasetRecord, DatasetVersionRecord | None]]:
        return self.store.datasets.latest()

    def dataset(self, ref: str) -> DatasetVersion:
        """``name`` (latest) or ``name@version``."""
        from gyre.datasets.catalog import get_version, parse_dataset_ref

        name, version = parse_dataset_ref(ref)
        return get_version(self.store, self.artifacts, name, version)

    def dataset_versions(self, name: str) -> list[DatasetVersionRecord]:
        return self.store.datasets.versions(name)

    def read_dataset(self, ref: str, *, head: int | None = None) -> pa.Table:
        from gyre.datasets.reader import head as read_head
        from gyre.datasets.reader import read_table

        version = self.dataset(ref)
        if head is not None:
            return read_head(self.artifacts, version.manifest, head)
        return read_table(self.artifacts, version.manifest)

    # -- runs and models -------------------------------------------------------------------

    def runs(self, *, kind: str | None = None, limit: int = 50) -> list[RunRecord]:
        return self.store.runs.recent(kind=kind, limit=limit)

    def run(self, run_id: str) -> tuple[RunRecord, dict[str, list[str]]]:
        record = self.store.runs.get(run_id)
        return record, self.store.lineage.edges_of_run(record.id)

    def models(self) -> list[ModelVersionRecord]:
        """The latest version of every model."""
        return [self.store.models.version(name) for name in self.store.models.names()]

    def model(self, ref: str) -> list[ModelVersionRecord]:
        """``name`` (every version, newest first) or ``name:version`` (just that one)."""
        from gyre.models.refs import parse_model_ref

        name, version = parse_model_ref(ref)
        if version is None:
            return self.store.models.versions(name)
        return [self.store.models.version(name, version)]

    # -- lineage and audit -----------------------------------------------------------------

    def lineage(self, ref: str, *, direction: Direction = "both") -> LineageGraph:
        from gyre.core.lineage import parse_node

        return self.store.lineage.graph(parse_node(ref), direction=direction)

    def audit_events(self, *, limit: int | None = None) -> list[AuditEvent]:
        return self.store.audit.recent(limit=limit)

    def verify_audit(self) -> tuple[int, ChainProblem | None]:
        return self.store.audit.verify()

    def alerts(self, *, status: str | None = None) -> list[AlertRecord]:
        return self.store.operations.alerts(status=status)

    def describe(self) -> dict[str, Any]:
        return {
            "root": str(self.paths.root),
            "store": self.store.url,
            "artifacts": self.artifacts.url,
            "lineage_url": self.settings.lineage_url,
        }

    # -- stages ----------------------------------------------------------------------------

    def ingest(self, source: str | None = None) -> list[IngestReport]:
        """Ingest the new batches of ``source`` (every configured source when None): new
        files, rows past the cursor, messages a stream holds."""
        from gyre.ingest.run import ingest_source

        names = [source] if source else list(self.config.sources)
        return [ingest_source(self.context, name) for name in names]

    def follow(
        self,
        source: str,
        *,
        stop: threading.Event,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> IngestReport:
        """Ingest ``source`` until ``stop`` is set: a stream keeps receiving (a version per
        micro-batch), a file or SQL source is asked for new batches every ``poll_seconds``.
        The batch in hand when ``stop`` is set is committed before this returns."""
        from gyre.ingest.run import ingest_source

        self.config.source(source)  # an unknown name fails before anything connects
        return ingest_source(self.context, source, follow=True, stop=stop, on_batch=on_batch)

    def ingest_path(
        self,
        location: str,
        *,
        name: str,
        contract: str | Path | None = None,
        quarantine_limit: float = 0.05,
    ) -> IngestReport:
        """Ingest a file, glob or URL into dataset ``name`` (no source declaration needed).

        With a contract, a big CSV file's raw copy starts first, on a thread of its own, while
        the project and the ingest code are opened on this one (see
        :func:`gyre.ingest.large_files.copy_ahead`); without one the file is read whole.
        """
        from gyre.ingest.large_files import copy_ahead

        copy = copy_ahead(location, self.artifacts) if contract else None
        try:
            from gyre.ingest.run import ingest_path

            return ingest_path(
                self.context,
                location,
                name=name,
                contract=Path(contract) if contract else None,
                quarantine_limit=quarantine_limit,
                copy=copy,
            )
        finally:
            if copy is not None:
                copy.close()

    def infer_contract(self, target: str, *, sample_rows: int | None = None) -> str:
        """A contract (YAML text) inferred from a file, or from a file source's first file."""
        from gyre.ingest.file_source import FileOptions, list_files
        from gyre.ingest.formats import read_batch
        from gyre.ingest.infer import infer_contract

        location = target
        if target in self.config.sources:
            options = self.config.source(target).options
            found = list_files(self.paths.root, FileOptions.model_validate(options).path)
            if not found:
                from gyre.core.errors import SourceError

                raise SourceError(
                    f"source '{target}' has no files yet to infer a contract from",
                    hint="drop a sample batch where its `path` points, or pass a file",
                )
            location = found[0][1]
        return infer_contract(read_batch(location).table, sample_rows=sample_rows)

    def quarantine(self) -> list[QuarantineSummary]:
        """Every declared source that has refused rows, with counts by rule and file."""
        from gyre.ingest.quarantine import summarise

        found = [summarise(self.context, name) for name in self.config.sources]
        return [s for s in found if s is not None]

    def quarantine_records(self, source: str, *, limit: int | None = None) -> pa.Table:
        from gyre.ingest.quarantine import records

        self.config.source(source)  # an unknown source is an error naming the known ones
        return records(self.context, source, limit=limit)

    def replay_quarantine(self, source: str) -> ReplayReport:
        """Hold the source's refused rows to its current contract again; move those that pass."""
        from gyre.ingest.quarantine import replay

        return replay(self.context, source)

    def ingest_history(self, source: str, *, limit: int | None = None) -> IngestHistory:
        """The source's batches (the latest ``limit``; None: all), the schema drift they caused
        and its contract versions."""
        from gyre.ingest.history import ingest_history

        return ingest_history(self.context, source, limit=limit)

    def contract_history(self, source: str) -> list[ContractVersionEntry]:
        """Every version of the source's contract, oldest first, with its column changes."""
        from gyre.ingest.history import contract_history

        versions = contract_history(self.context, source)
        if not versions and source not in self.config.sources:
            self.config.source(source)  # raises, naming the sources that exist
        return versions

    def prepare(self, dataset: str | None = None) -> list[PrepareReport]:
        """Rebuild ``dataset`` (every derived dataset, in dependency order, when None)."""
        from gyre.prepare.run import prepare_dataset

        names = [dataset] if dataset else list(self.config.dataset_order())
        return [prepare_dataset(self.context, name) for name in names]

    def train(self, model: str, *, window_days: int | None = None) -> TrainReport:
        from gyre.train.run import train_model

        return train_model(self.context, model, window_days=window_days)

    def validate(self, ref: str) -> ValidationReport:
        from gyre.models.refs import parse_model_ref
        from gyre.validate.run import validate_model

        name, version = parse_model_ref(ref)
        return validate_model(self.context, name, version)

    def promote(self, ref: str, *, alias: str = "champion", reason: str) -> Promotion:
        """Point ``alias`` at a validated (and, if required, approved) version."""
        from gyre.models.refs import parse_model_ref
        from gyre.serve.deploy import promote

        name, version = parse_model_ref(ref)
        if version is None:
            version = self.store.models.version(name).version
        return promote(self.context, name, version, alias=alias, reason=reason)

    def rollback(self, endpoint: str, *, reason: str) -> Promotion:
        from gyre.serve.deploy import rollback

        return rollback(self.context, endpoint, reason=reason)

    def approve(self, ref: str, *, reason: str, reject: bool = False) -> ApprovalRecord:
        from gyre.core.store import current_actor
        from gyre.models.refs import parse_model_ref

        name, version = parse_model_ref(ref)
        record = self.store.models.version(name, version)
        return self.store.models.add_approval(
            record,
            decision="rejected" if reject else "approved",
            actor=current_actor(),
            reason=reason,
        )

    def serve(
        self,
        endpoint: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        poll_interval: float = 1.0,
    ) -> None:
        """Serve ``endpoint`` over HTTP (Open Inference Protocol v2) until stopped."""
        from gyre.serve.endpoint import serve_endpoint

        serve_endpoint(self.context, endpoint, host=host, port=port, poll_interval=poll_interval)

    def feedback(self, endpoint: str, labels: pa.Table) -> int:
        """Attach true labels (columns request_id, row, label) to logged inferences."""
        from gyre.monitor.feedback import FeedbackLog
        from gyre.monitor.inference_log import InferenceLog

        self.config.endpoint(endpoint)  # an unknown endpoint is an error naming the known ones
        log = FeedbackLog(self.paths.feedback_logs, InferenceLog(self.paths.inference_logs))
        log.append(labels)
        return int(labels.num_rows)

    def monitor(self, name: str, *, start: datetime, end: datetime, window: str) -> MonitorReport:
        """Evaluate monitor ``name`` on the traffic logged in [start, end)."""
        from gyre.monitor.run import check_window

        return check_window(self.context, name, start=start, end=end, label=window)
