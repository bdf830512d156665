"""The project file, ``gyre.yaml``, as frozen typed objects.

``gyre.yaml`` declares the whole loop: where raw data comes from (sources), how it is reshaped
(datasets), what is trained on it (models), where models serve (endpoints) and how served traffic
is watched (monitors). It is parsed once into :class:`ProjectConfig`; every later stage reads that
object rather than the YAML.

    cfg = load_project(Path("examples/bikes"))
    cfg.model("demand").trainer            # 'lightgbm'
    cfg.resolve(cfg.source("rentals").contract)

Every mistake is reported with the file, line and dotted key, e.g.
``gyre.yaml:14 models.demand.trainer: unknown trainer 'lgbm'; expected one of lightgbm, sklearn``.
Checks happen in two passes: pydantic checks shapes and types, then :func:`_cross_check` checks
what pydantic cannot see (names that refer to each other, plugin names, files that must exist),
still with line numbers because the parsed document keeps them.

Plugin names (trainers, source types) are not listed here: the caller passes the names its
registries know, so a new trainer needs no change to this module.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from gyre.core.errors import ConfigError
from gyre.core.yaml_positions import PathKey, Problem, YamlDocument, load_yaml

PROJECT_FILE = "gyre.yaml"
DEFAULT_TRAINERS = ("lightgbm", "sklearn")
DEFAULT_SOURCE_TYPES = ("csv",)

_T = TypeVar("_T")

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _table_name(value: str) -> str:
    # Sources and datasets become table names in the prepare step's SQL, so they must be plain
    # SQL identifiers that need no quoting.
    if not _TABLE_NAME.match(value):
        raise ValueError(
            f"invalid name '{value}': use letters, digits and underscores, not starting with a "
            "digit (it is a table name in SQL)"
        )
    return value


def _name(value: str) -> str:
    # Model, endpoint and monitor names appear in URLs and file names.
    if not _NAME.match(value):
        raise ValueError(
            f"invalid name '{value}': start with a letter, then letters, digits, '_' or '-'"
        )
    return value


def _not_empty(value: tuple[str, ...]) -> tuple[str, ...]:
    # Not Field(min_length=1): pydantic would also report "too short" when an item is invalid.
    if not value:
        raise ValueError("list at least one name")
    return value


TableName = Annotated[str, AfterValidator(_table_name)]
Name = Annotated[str, AfterValidator(_name)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DedupConfig(_Frozen):
    """How repeated rows are dropped: by primary key (first or last wins) and exact copies."""

    primary_key: tuple[str, ...] = Field(min_length=1)
    keep: Literal["first", "last"] = "first"
    cursor: str | None = None  # with keep: last, the row with the greatest cursor wins
    exact_duplicates: bool = True


PiiAction = Literal["keep", "mask", "hash", "drop"]

DriftMode = Literal["evolve", "freeze", "discard_row", "discard_value"]
TableDriftMode = Literal["evolve", "freeze"]
_DRIFT_MODES = ("evolve", "freeze", "discard_row", "discard_value")


class SchemaDriftConfig(_Frozen):
    """What a source may change about its schema (dlt's schema-contract vocabulary).

    ``tables``: may the source create its dataset (a source has exactly one, so the discard
    modes have nothing to discard). ``columns``: new and missing columns. ``data_type``: values
    that cannot be read as their column's type. See docs/ingest.md, "Schema drift".
    """

    tables: TableDriftMode = "evolve"
    columns: DriftMode = "evolve"
    data_type: DriftMode = "discard_row"

    @model_validator(mode="before")
    @classmethod
    def _one_mode_for_all(cls, value: Any) -> Any:
        # `schema_drift: freeze` is short for the same mode everywhere it applies.
        if not isinstance(value, str):
            return value
        if value not in _DRIFT_MODES:
            raise ValueError(
                f"expected one of {', '.join(_DRIFT_MODES)} or a mapping such as "
                f"{{columns: evolve, data_type: discard_row}}, got '{value}'"
            )
        tables = value if value in ("evolve", "freeze") else "evolve"
        return {"tables": tables, "columns": value, "data_type": value}

    @field_validator("tables", mode="before")
    @classmethod
    def _tables_cannot_discard(cls, value: Any) -> Any:
        if value in ("discard_row", "discard_value"):
            raise ValueError(
                f"`{value}` does not apply to tables: a source writes one dataset, so a batch "
                "cannot be partly kept; use evolve (the source may create its dataset) or "
                "freeze (it may not)"
            )
        return value


class SourceConfig(BaseModel):
    """Where raw data comes from. ``type`` names a source plugin (``csv``, ``sql``, ...).

    The keys below are common to every source; any other key (``path``, ``url``, ``table``...)
    belongs to the plugin, which validates it when the project is loaded.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    contract: str | None = None
    quarantine_limit: float = Field(default=0.05, ge=0.0, le=1.0)
    dedup: DedupConfig | None = None
    pii: dict[str, PiiAction] = Field(default_factory=dict)
    schema_drift: SchemaDriftConfig = SchemaDriftConfig()
    poll_seconds: float = Field(default=10.0, gt=0.0)  # --follow: look for new batches so often
    # A batch refused as a whole (quarantine limit, rows, freshness, freeze): `fail` commits
    # nothing and stops; `quarantine` stores all of its rows in the quarantine and goes on, so
    # a stream under a supervisor does not receive the same refused batch forever.
    on_refused_batch: Literal["fail", "quarantine"] = "fail"
    description: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The plugin's own keys, as written in gyre.yaml."""
        return dict(self.model_extra or {})


class DatasetConfig(_Frozen):
    """A derived dataset: SQL over sources and other datasets (each visible as a table)."""

    inputs: Annotated[tuple[TableName, ...], AfterValidator(_not_empty)]
    sql: str | None = None
    query: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _exactly_one_sql(self) -> DatasetConfig:
        if (self.sql is None) == (self.query is None):
            raise ValueError("give exactly one of `sql` (a .sql file) or `query` (inline SQL)")
        return self


class ValidationSplit(_Frozen):
    """How the holdout is cut: the last N days (needs ``time_column``) or the last fraction
    of rows, in dataset order."""

    last_days: PositiveInt | None = None
    fraction: float | None = Field(default=None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> ValidationSplit:
        if (self.last_days is None) == (self.fraction is None):
            raise ValueError("give exactly one of `last_days` or `fraction`")
        return self


class GateConfig(_Frozen):
    """One metric gate: an absolute bound (``max``/``min``) and/or beating the champion."""

    metric: str
    max: float | None = None
    min: float | None = None
    beat_champion: bool = False

    @model_validator(mode="after")
    def _has_a_bound(self) -> GateConfig:
        if self.max is None and self.min is None and not self.beat_champion:
            raise ValueError("a gate needs `max`, `min` or `beat_champion: true`")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max}); no value could pass")
        return self


class ModelConfig(_Frozen):
    """What to train, on which data, and what it must pass before serving."""

    trainer: str
    task: Literal["regression", "classification"]
    data: TableName
    target: str
    features: Annotated[tuple[str, ...], AfterValidator(_not_empty)]
    time_column: str | None = None
    validation: ValidationSplit = ValidationSplit(fraction=0.2)
    params: dict[str, Any] = Field(default_factory=dict)
    gates: tuple[GateConfig, ...] = ()
    approval: Literal["auto", "required"] = "auto"
    description: str | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class EndpointConfig(_Frozen):
    """A serving name bound to a model alias (``champion`` unless told otherwise)."""

    model: Name
    alias: Name = "champion"


class DriftConfig(_Frozen):
    """Feature drift between training data and a window of served traffic."""

    method: Literal["psi", "ks"] = "psi"
    threshold: float = Field(default=0.2, gt=0.0)
    features: tuple[str, ...] | None = None


class PerformanceConfig(_Frozen):
    """Alert when a window's error exceeds ``max_ratio`` times the champion's validation error."""

    metric: str
    max_ratio: float = Field(default=1.3, gt=0.0)


class RetrainConfig(_Frozen):
    """What a retrain uses: the last ``window_days`` of data (None: all of it)."""

    window_days: PositiveInt | None = None
    cooldown_windows: NonNegativeInt = 1


class MonitorConfig(_Frozen):
    """How an endpoint's served traffic is watched, and what an alert does."""

    endpoint: Name
    window: Literal["day", "week", "month"] = "day"
    drift: DriftConfig | None = DriftConfig()
    performance: PerformanceConfig | None = None
    on_alert: Literal["retrain", "none"] = "none"
    retrain: RetrainConfig = RetrainConfig()


class ProjectConfig(_Frozen):
    """The parsed ``gyre.yaml``. Build it with :func:`load_project`."""

    project: Name
    sources: dict[TableName, SourceConfig] = Field(default_factory=dict)
    datasets: dict[TableName, DatasetConfig] = Field(default_factory=dict)
    models: dict[Name, ModelConfig] = Field(default_factory=dict)
    endpoints: dict[Name, EndpointConfig] = Field(default_factory=dict)
    monitors: dict[Name, MonitorConfig] = Field(default_factory=dict)

    # Where the file was read from; not part of the configuration's value. A config built in
    # Python without a file resolves paths against the current directory.
    _file: Path | None = PrivateAttr(default=None)
    _doc: YamlDocument | None = PrivateAttr(default=None)

    @field_validator("sources", "datasets", "models", "endpoints", "monitors", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        # A section whose entries are all commented out parses as null; treat it as empty.
        return {} if value is None else value

    @property
    def file(self) -> Path | None:
        """The ``gyre.yaml`` this was loaded from, if any."""
        return self._file

    @property
    def root(self) -> Path:
        """The project directory: relative paths in the file are relative to it."""
        return self._file.parent if self._file is not None else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the file (a contract, a SQL file, a source glob) made absolute."""
        return self.root / relative

    def source(self, name: str) -> SourceConfig:
        return self._lookup("sources", "source", self.sources, name)

    def dataset(self, name: str) -> DatasetConfig:
        return self._lookup("datasets", "dataset", self.datasets, name)

    def model(self, name: str) -> ModelConfig:
        return self._lookup("models", "model", self.models, name)

    def endpoint(self, name: str) -> EndpointConfig:
        return self._lookup("endpoints", "endpoint", self.endpoints, name)

    def monitor(self, name: str) -> MonitorConfig:
        return self._lookup("monitors", "monitor", self.monitors, name)

    def table_names(self) -> tuple[str, ...]:
        """Names a dataset's SQL or a model's ``data`` can refer to: sources, then datasets."""
        return (*self.sources, *self.datasets)

    def dataset_order(self) -> tuple[str, ...]:
        """Datasets in an order where each comes after every dataset it reads."""
        order: list[str] = []
        done: set[str] = set()

        def visit(name: str) -> None:
            if name in done or name not in self.datasets:
                return
            done.add(name)  # load_project has already rejected cycles
            for dep in self.datasets[name].inputs:
                visit(dep)
            order.append(name)

        for name in self.datasets:
            visit(name)
        return tuple(order)

    def line_of(self, *path: str | int) -> int | None:
        """Line in ``gyre.yaml`` of a key path such as ``("models", "demand", "target")``."""
        return self._doc.line_of(path) if self._doc is not None else None

    def error_at(
        self, path: Sequence[str | int], message: str, *, hint: str | None = None
    ) -> ConfigError:
        """A :class:`ConfigError` pointing at a key of this file, for later stages to raise
        (e.g. a trainer that finds a configured feature missing from the data)."""
        if self._doc is not None:
            return self._doc.error(path, message, hint=hint)
        return ConfigError(message, key=".".join(str(p) for p in path), hint=hint)

    def _lookup(self, section: str, noun: str, entries: Mapping[str, _T], name: str) -> _T:
        if name in entries:
            return entries[name]
        if entries:
            known = ", ".join(entries)
            message = f"no {noun} named '{name}'; known {section}: {known}"
            close = difflib.get_close_matches(name, list(entries), n=1)
            hint = f"did you mean '{close[0]}'?" if close else None
        else:
            message = f"no {noun} named '{name}'; this project defines no {section}"
            hint = f"add one under `{section}:` in {PROJECT_FILE}"
        raise self.error_at((section,), message, hint=hint)


def load_project(
    path: Path | str = ".",
    *,
    known_trainers: Iterable[str] = DEFAULT_TRAINERS,
    known_source_types: Iterable[str] | Mapping[str, OptionsCheck] = DEFAULT_SOURCE_TYPES,
    check_files: bool = True,
    display_name: str | None = None,
) -> ProjectConfig:
    """Read and check ``gyre.yaml`` (``path`` is the file or the project directory).

    ``known_trainers`` and ``known_source_types`` are the plugin names the caller's registries
    know; given as a mapping, each source type's value checks that plugin's own keys (raising
    pydantic's ``ValidationError``), so a typo there is reported with its line too. With
    ``check_files``, contract and SQL files named in the config must exist.
    ``display_name`` is how messages name the file (default: the path as given).
    """
    file = Path(path)
    if file.is_dir():
        file = file / PROJECT_FILE
    display = display_name or str(file)
    if not file.exists():
        raise ConfigError(
            f"{display} does not exist",
            hint="run `gyre init` to create a project here, or pass the project directory",
        )
    doc = load_yaml(file, display_name=display)
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping with `project:` and sections such as `sources:`")
    try:
        cfg = ProjectConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise doc.validation_error(exc, ProjectConfig) from None
    cfg._file = file.absolute()  # paths in the file stay valid if the process changes directory
    cfg._doc = doc
    checks = dict(known_source_types) if isinstance(known_source_types, Mapping) else {}
    problems = _cross_check(cfg, set(known_trainers), set(known_source_types), check_files)
    problems += _check_source_options(cfg, checks)
    if problems:
        raise doc.problems_error(problems)
    return cfg


OptionsCheck = Callable[[Mapping[str, Any]], object]


def _check_source_options(cfg: ProjectConfig, checks: Mapping[str, OptionsCheck]) -> list[Problem]:
    """Let each source plugin validate its own keys; map its errors to their lines."""
    problems: list[Problem] = []
    for name, src in cfg.sources.items():
        check = checks.get(src.type)
        if check is None:
            continue
        try:
            check(src.options)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                path: PathKey = ("sources", name, *loc)
                if err["type"] == "extra_forbidden":
                    message = f"unknown key '{loc[-1]}' for a {src.type} source"
                elif err["type"] == "missing":
                    message = f"a {src.type} source needs '{loc[-1]}'"
                    path = ("sources", name)
                else:
                    message = err["msg"]
                problems.append(Problem(path, message))
        except ValueError as exc:
            problems.append(Problem(("sources", name), str(exc)))
    return problems


def _one_of(kind: str, value: str, known: Iterable[str]) -> Problem:
    names = sorted(known)
    message = f"unknown {kind} '{value}'; expected one of {', '.join(names) or '(none registered)'}"
    close = difflib.get_close_matches(value, names, n=1)
    return Problem((), message, f"did you mean '{close[0]}'?" if close else None)


def _at(path: PathKey, problem: Problem) -> Problem:
    return Problem(path, problem.message, problem.hint)


def _cross_check(
    cfg: ProjectConfig, trainers: set[str], source_types: set[str], check_files: bool
) -> list[Problem]:
    """Checks pydantic cannot express: references between sections, plugins, files."""
    problems: list[Problem] = []
    tables = cfg.table_names()

    def need_file(path: PathKey, relative: str, what: str) -> None:
        if check_files and not cfg.resolve(relative).is_file():
            problems.append(
                Problem(path, f"{what} file '{relative}' not found (looked in {cfg.root})")
            )

    for name, src in cfg.sources.items():
        here: PathKey = ("sources", name)
        if src.type not in source_types:
            problems.append(_at((*here, "type"), _one_of("source type", src.type, source_types)))
        if src.contract is not None:
            need_file((*here, "contract"), src.contract, "contract")

    for name, ds in cfg.datasets.items():
        here = ("datasets", name)
        if name in cfg.sources:
            problems.append(
                Problem(here, f"'{name}' is both a source and a dataset; rename one of them")
            )
        for i, dep in enumerate(ds.inputs):
            if dep == name:
                problems.append(Problem((*here, "inputs", i), "a dataset cannot read itself"))
            elif dep not in tables:
                problems.append(
                    Problem((*here, "inputs", i), _unknown_ref("source or dataset", dep, tables))
                )
        if ds.sql is not None:
            need_file((*here, "sql"), ds.sql, "SQL")
    cycle = _find_cycle(cfg)
    if cycle:
        problems.append(
            Problem(
                ("datasets", cycle[0], "inputs"), "datasets form a cycle: " + " -> ".join(cycle)
            )
        )

    for name, model in cfg.models.items():
        here = ("models", name)
        if model.trainer not in trainers:
            problems.append(_at((*here, "trainer"), _one_of("trainer", model.trainer, trainers)))
        if model.data not in tables:
            problems.append(
                Problem((*here, "data"), _unknown_ref("source or dataset", model.data, tables))
            )
        seen: set[str] = set()
        for i, feature in enumerate(model.features):
            if feature in seen:
                problems.append(Problem((*here, "features", i), f"'{feature}' is listed twice"))
            seen.add(feature)
            if feature == model.target:
                problems.append(
                    Problem(
                        (*here, "features", i),
                        f"the target '{feature}' cannot also be a feature",
                        "remove it from features: it leaks the answer into training",
                    )
                )
        if model.validation.last_days is not None and model.time_column is None:
            problems.append(
                Problem(
                    (*here, "validation", "last_days"),
                    "`last_days` needs `time_column` to know which rows are the last days",
                    "set time_column, or use `validation: {fraction: 0.2}`",
                )
            )
        if model.time_column is not None and model.time_column == model.target:
            problems.append(Problem((*here, "time_column"), "the time column cannot be the target"))

    for name, ep in cfg.endpoints.items():
        if ep.model not in cfg.models:
            problems.append(
                Problem(("endpoints", name, "model"), _unknown_ref("model", ep.model, cfg.models))
            )

    for name, mon in cfg.monitors.items():
        here = ("monitors", name)
        endpoint = cfg.endpoints.get(mon.endpoint)
        if endpoint is None:
            problems.append(
                Problem((*here, "endpoint"), _unknown_ref("endpoint", mon.endpoint, cfg.endpoints))
            )
        if mon.drift is None and mon.performance is None:
            problems.append(
                Problem(here, "this monitor watches nothing: set `drift`, `performance` or both")
            )
        if endpoint is not None and mon.drift is not None and mon.drift.features is not None:
            watched = cfg.models.get(endpoint.model)
            for i, feature in enumerate(mon.drift.features):
                if watched is not None and feature not in watched.features:
                    problems.append(
                        Problem(
                            (*here, "drift", "features", i),
                            f"'{feature}' is not a feature of model '{endpoint.model}' "
                            f"(features: {', '.join(watched.features)})",
                        )
                    )
    return problems


def _unknown_ref(kind: str, name: str, known: Iterable[str]) -> str:
    names = list(known)
    if not names:
        return f"no {kind} named '{name}' (none are defined)"
    return f"no {kind} named '{name}'; expected one of {', '.join(names)}"


def _find_cycle(cfg: ProjectConfig) -> list[str] | None:
    """The first cycle among datasets, as a path that starts and ends with the same name."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in cfg.datasets[name].inputs:
            if dep not in cfg.datasets:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in cfg.datasets:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None
