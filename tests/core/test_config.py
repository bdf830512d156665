"""gyre.yaml parsing: the happy path, and every kind of mistake reported as file:line key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gyre.core.config import ProjectConfig, load_project
from gyre.core.errors import ConfigError, WorkspaceError
from gyre.core.project_template import TEMPLATE, render_template, write_template
from gyre.core.yaml_positions import parse_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bikes"

BASE = """\
project: demo
sources:
  rentals:
    type: csv
    path: data/*.csv
    contract: contracts/rentals.yaml
datasets:
  features:
    inputs: [rentals]
    sql: sql/features.sql
models:
  demand:
    trainer: lightgbm
    task: regression
    data: features
    target: cnt
    features: [hr, temp]
    time_column: day
    validation: {last_days: 30}
    gates:
      - {metric: mae, max: 90}
endpoints:
  demand:
    model: demand
monitors:
  demand:
    endpoint: demand
    window: month
    performance: {metric: mae, max_ratio: 1.3}
    on_alert: retrain
"""


def project(tmp_path: Path, text: str) -> Path:
    """A project folder with the given gyre.yaml and the files BASE refers to."""
    (tmp_path / "contracts").mkdir(exist_ok=True)
    (tmp_path / "contracts" / "rentals.yaml").write_text("columns: []\n")
    (tmp_path / "sql").mkdir(exist_ok=True)
    (tmp_path / "sql" / "features.sql").write_text("SELECT * FROM rentals\n")
    path = tmp_path / "gyre.yaml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in text")


def load_error(tmp_path: Path, text: str, **kwargs: object) -> tuple[ConfigError, Path]:
    path = project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_project(path, **kwargs)  # type: ignore[arg-type]
    return info.value, path


# ------------------------------------------------------------------------------ happy paths


def test_base_project_loads(tmp_path: Path) -> None:
    cfg = load_project(project(tmp_path, BASE))
    assert cfg.project == "demo"
    assert cfg.model("demand").validation.last_days == 30
    assert cfg.model("demand").validation.fraction is None
    assert cfg.model("demand").gates[0].max == 90
    assert cfg.endpoint("demand").alias == "champion"
    monitor = cfg.monitor("demand")
    assert monitor.drift is not None and monitor.drift.method == "psi"
    assert monitor.drift.threshold == 0.2
    assert monitor.retrain.cooldown_windows == 1
    assert cfg.root == tmp_path
    assert cfg.resolve("sql/features.sql").is_file()
    assert cfg.line_of("models", "demand", "trainer") == line_of(BASE, "trainer:")


def test_directory_or_file_both_work(tmp_path: Path) -> None:
    path = project(tmp_path, BASE)
    assert load_project(tmp_path) == load_project(path)


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_project(project(tmp_path, BASE))
    with pytest.raises(ValidationError):
        cfg.model("demand").target = "other"  # type: ignore[misc]


def test_bikes_example_loads() -> None:
    cfg = load_project(EXAMPLE)
    assert cfg.project == "bikes"
    model = cfg.model("demand")
    assert model.trainer == "lightgbm" and model.task == "regression"
    assert model.data == "features" and model.target == "cnt"
    assert model.time_column == "dteday"
    assert {"yr", "casual", "registered", "cnt", "instant"}.isdisjoint(model.features)
    assert model.validation.last_days == 30
    assert model.approval == "auto"
    assert [g.metric for g in model.gates] == ["mae", "mae"]
    assert cfg.endpoint("demand").model == "demand"
    monitor = cfg.monitor("demand")
    assert monitor.window == "month" and monitor.on_alert == "retrain"
    assert monitor.retrain.window_days == 180
    assert monitor.performance is not None and monitor.performance.max_ratio == 1.3
    assert cfg.dataset_order() == ("features",)


def test_dataset_order_puts_inputs_first(tmp_path: Path) -> None:
    text = BASE.replace(
        "datasets:\n",
        "datasets:\n  late:\n    inputs: [features, early]\n    query: SELECT 1\n"
        "  early:\n    inputs: [rentals]\n    query: SELECT 1\n",
    )
    cfg = load_project(project(tmp_path, text))
    order = cfg.dataset_order()
    assert order.index("early") < order.index("late")
    assert order.index("features") < order.index("late")


def test_empty_sections_are_allowed(tmp_path: Path) -> None:
    cfg = load_project(project(tmp_path, "project: p\nsources:\nmodels:\n"))
    assert cfg.sources == {} and cfg.models == {}


def test_other_registries_can_be_passed(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, BASE, known_trainers=["xgboost"])
    assert f"{path}:13 models.demand.trainer: unknown trainer 'lightgbm'" in str(err)
    load_project(path, known_trainers=["lightgbm"])


# ------------------------------------------------------------------------------ each error


def test_unknown_trainer_names_file_line_key(tmp_path: Path) -> None:
    text = BASE.replace("trainer: lightgbm", "trainer: lgbm")
    err, path = load_error(tmp_path, text)
    expected = (
        f"{path}:13 models.demand.trainer: unknown trainer 'lgbm'; "
        "expected one of lightgbm, sklearn"
    )
    assert str(err).splitlines()[0] == expected
    assert (err.file, err.line, err.key) == (str(path), 13, "models.demand.trainer")
    assert err.hint == "did you mean 'lightgbm'?"


def test_wrong_type(tmp_path: Path) -> None:
    text = BASE.replace("{last_days: 30}", "{last_days: thirty}")
    err, path = load_error(tmp_path, text)
    line = line_of(text, "last_days")
    assert str(err).startswith(
        f"{path}:{line} models.demand.validation.last_days: expected an integer, got 'thirty'"
    )


def test_out_of_range_value(tmp_path: Path) -> None:
    text = BASE.replace(
        "    contract: contracts/rentals.yaml\n", "    contract: c.yaml\n    quarantine_limit: 2\n"
    )
    err, path = load_error(tmp_path, text, check_files=False)
    line = line_of(text, "quarantine_limit")
    assert str(err).startswith(f"{path}:{line} sources.rentals.quarantine_limit: must be less")
    assert "got 2" in str(err)


def test_literal_choice(tmp_path: Path) -> None:
    text = BASE.replace("task: regression", "task: regresion")
    err, path = load_error(tmp_path, text)
    assert str(err).startswith(
        f"{path}:{line_of(text, 'task:')} models.demand.task: "
        "expected 'regression' or 'classification', got 'regresion'"
    )


def test_unknown_key_lists_the_expected_ones(tmp_path: Path) -> None:
    text = BASE.replace("    target: cnt\n", "    target: cnt\n    aproval: auto\n")
    err, path = load_error(tmp_path, text)
    first = str(err).splitlines()[0]
    assert first.startswith(
        f"{path}:{line_of(text, 'aproval')} models.demand.aproval: unknown key 'aproval'; "
        "expected one of trainer, task, data, target, features"
    )
    assert err.hint == "did you mean 'approval'?"


def test_missing_required_key_points_at_the_parent(tmp_path: Path) -> None:
    text = BASE.replace("    target: cnt\n", "")
    err, path = load_error(tmp_path, text)
    line = line_of(text, "  demand:")
    assert str(err).startswith(
        f"{path}:{line} models.demand.target: required key 'target' is missing"
    )


def test_missing_project_name(tmp_path: Path) -> None:
    text = BASE.replace("project: demo\n", "")
    err, path = load_error(tmp_path, text)
    assert str(err).startswith(f"{path}:1 project: required key 'project' is missing")


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    text = BASE.replace("trainer: lightgbm", "trainr: lightgbm").replace("max: 90", "max: high")
    err, path = load_error(tmp_path, text)
    lines = str(err).splitlines()
    assert lines[0].startswith(f"{path}:{line_of(text, '  demand:')} models.demand.trainer:")
    assert f"also {path}:{line_of(text, 'trainr')} models.demand.trainr: unknown key" in str(err)
    assert f"also {path}:{line_of(text, 'max: high')} models.demand.gates[0].max:" in str(err)
    assert (
        err.hint
        == f"'trainr' on line {line_of(text, 'trainr')} looks like a misspelling of 'trainer'"
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "needle", "message"),
    [
        (
            "    model: demand",
            "    model: demnd",
            "endpoints.demand.model",
            "model: demnd",
            "no model named 'demnd'; expected one of demand",
        ),
        (
            "    data: features",
            "    data: featurez",
            "models.demand.data",
            "data: featurez",
            "no source or dataset named 'featurez'; expected one of rentals, features",
        ),
        (
            "    endpoint: demand",
            "    endpoint: nope",
            "monitors.demand.endpoint",
            "endpoint: nope",
            "no endpoint named 'nope'; expected one of demand",
        ),
        (
            "    inputs: [rentals]",
            "    inputs: [rentals, weather]",
            "datasets.features.inputs[1]",
            "inputs: [rentals, weather]",
            "no source or dataset named 'weather'",
        ),
        (
            "    inputs: [rentals]",
            "    inputs: [features]",
            "datasets.features.inputs[0]",
            "inputs: [features]",
            "a dataset cannot read itself",
        ),
        (
            "    features: [hr, temp]",
            "    features: [hr, cnt]",
            "models.demand.features[1]",
            "features: [hr, cnt]",
            "the target 'cnt' cannot also be a feature",
        ),
        (
            "    time_column: day\n",
            "",
            "models.demand.validation.last_days",
            "last_days",
            "`last_days` needs `time_column`",
        ),
        (
            "    type: csv",
            "    type: kafka",
            "sources.rentals.type",
            "type: kafka",
            "unknown source type 'kafka'; expected one of csv",
        ),
        (
            "    sql: sql/features.sql",
            "    sql: sql/missing.sql",
            "datasets.features.sql",
            "missing.sql",
            "SQL file 'sql/missing.sql' not found",
        ),
        (
            "    sql: sql/features.sql",
            "    sql: sql/features.sql\n    query: SELECT 1",
            "datasets.features",
            "  features:",
            "give exactly one of `sql` (a .sql file) or `query` (inline SQL)",
        ),
        (
            "    on_alert: retrain",
            "    on_alert: retrain\n    drift: {features: [hr, wind]}",
            "monitors.demand.drift.features[1]",
            "drift:",
            "'wind' is not a feature of model 'demand'",
        ),
        (
            "  rentals:\n    type: csv",
            "  rental-log:\n    type: csv",
            "sources.rental-log",
            "rental-log",
            "invalid name 'rental-log'",
        ),
    ],
)
def test_bad_references_and_rules(
    tmp_path: Path, old: str, new: str, key: str, needle: str, message: str
) -> None:
    assert old in BASE
    text = BASE.replace(old, new)
    err, path = load_error(tmp_path, text)
    assert f"{path}:{line_of(text, needle)} {key}: {message}" in str(err)


def test_dataset_cycle(tmp_path: Path) -> None:
    text = BASE.replace(
        "datasets:\n",
        "datasets:\n  a:\n    inputs: [b]\n    query: SELECT 1\n"
        "  b:\n    inputs: [a]\n    query: SELECT 1\n",
    )
    err, path = load_error(tmp_path, text)
    line = line_of(text, "inputs: [b]")
    assert f"{path}:{line} datasets.a.inputs: datasets form a cycle: a -> b -> a" in str(err)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    text = BASE.replace("    features: [hr, temp]", "    features: [hr, temp")
    err, path = load_error(tmp_path, text)
    assert str(err).startswith(f"{path}:")
    assert "YAML syntax error" in str(err)
    assert err.line is not None
    assert line_of(text, "[hr, temp") <= err.line <= line_of(text, "[hr, temp") + 1


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "project: p\nsources:\n\trentals: {}\n")
    assert str(err).startswith(f"{path}:3: YAML syntax error")


def test_duplicate_key(tmp_path: Path) -> None:
    text = BASE.replace("    target: cnt\n", "    target: cnt\n    target: casual\n")
    err, path = load_error(tmp_path, text)
    second = line_of(text, "target: casual")
    assert str(err).startswith(
        f"{path}:{second} models.demand.target: duplicate key 'target' "
        f"(first defined at line {second - 1})"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err, path = load_error(tmp_path, text)
    assert str(err).startswith(f"{path}: the file is empty")


def test_not_a_mapping(tmp_path: Path) -> None:
    err, path = load_error(tmp_path, "- a\n- b\n")
    assert str(err).startswith(f"{path}:1: expected a mapping")


def test_missing_file_suggests_gyre_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path)
    assert str(tmp_path / "gyre.yaml") in str(info.value)
    assert info.value.hint is not None and "gyre init" in info.value.hint


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gyre.yaml"
    path.write_bytes(b"project: p\nsources:\n  caf\xe9: {}\n")
    with pytest.raises(ConfigError) as info:
        load_project(path)
    assert str(info.value).startswith(f"{path}:3: not valid UTF-8 (byte 0xe9)")


def test_lookup_miss_lists_known_names(tmp_path: Path) -> None:
    path = project(tmp_path, BASE)
    cfg = load_project(path)
    with pytest.raises(ConfigError) as info:
        cfg.model("demnad")
    message = str(info.value)
    assert message.startswith(f"{path}:{line_of(BASE, 'models:')} models: no model named 'demnad'")
    assert "known models: demand" in message
    assert info.value.hint == "did you mean 'demand'?"
    with pytest.raises(ConfigError, match="this project defines no"):
        load_project(project(tmp_path, "project: p\n")).source("rentals")


def test_error_at_for_later_stages(tmp_path: Path) -> None:
    path = project(tmp_path, BASE)
    cfg = load_project(path)
    err = cfg.error_at(("models", "demand", "features", 1), "column 'temp' is not in the data")
    assert str(err) == (
        f"{path}:{line_of(BASE, 'features: [hr')} models.demand.features[1]: "
        "column 'temp' is not in the data"
    )


def test_config_without_a_file_resolves_against_cwd() -> None:
    cfg = ProjectConfig.model_validate({"project": "p"})
    assert cfg.file is None and cfg.root == Path.cwd()


# ------------------------------------------------------------------------ yaml positions


def test_positions_follow_anchors_and_merge_keys() -> None:
    doc = parse_yaml(
        "base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\n",
        "f.yaml",
    )
    assert doc.data["child"] == {"x": 1, "y": 3}
    assert doc.line_of(("child", "y")) == 6
    assert doc.line_of(("child", "x")) == 2  # comes from the anchor
    assert doc.line_of(("child", "missing")) == 4


# ------------------------------------------------------------------------------ template


def test_template_writes_a_loadable_project(tmp_path: Path) -> None:
    path = write_template(tmp_path / "new", "bikes")
    assert path == tmp_path / "new" / "gyre.yaml"
    cfg = load_project(path)
    assert cfg.project == "bikes"
    assert cfg.models == {} and cfg.sources == {}


def test_template_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "gyre.yaml").write_text("project: mine\n")
    with pytest.raises(WorkspaceError, match="already exists"):
        write_template(tmp_path, "other")
    assert (tmp_path / "gyre.yaml").read_text() == "project: mine\n"


def test_template_rejects_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="invalid project name"):
        write_template(tmp_path, "my project")
    assert not (tmp_path / "gyre.yaml").exists()


def test_uncommented_template_is_a_complete_valid_project(tmp_path: Path) -> None:
    # The commented examples are documentation; this keeps them in step with the schema.
    text = render_template("bikes")
    lines = [re.sub(r"^# ", "", line) for line in text.splitlines() if not line.startswith("##")]
    path = tmp_path / "gyre.yaml"
    path.write_text("\n".join(lines) + "\n")
    cfg = load_project(path, check_files=False)
    assert set(cfg.sources) == {"rentals"}
    assert cfg.model("demand").validation.last_days == 30
    assert cfg.monitor("demand").drift is not None
    assert "{name}" in TEMPLATE and yaml.safe_load(text) is not None


def test_bikes_comment_cites_the_real_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example's header comment quotes an error message; keep it true.
    text = (EXAMPLE / "gyre.yaml").read_text()
    quoted = re.search(r"`(gyre\.yaml:\d+ models\.demand\.trainer: [^`]*)`", text)
    assert quoted is not None
    cited = " ".join(quoted.group(1).replace("#", " ").split())
    shutil.copytree(EXAMPLE, tmp_path / "bikes")
    bad = tmp_path / "bikes" / "gyre.yaml"
    bad.write_text(text.replace("trainer: lightgbm ", "trainer: lgbm ", 1))
    monkeypatch.chdir(tmp_path / "bikes")
    with pytest.raises(ConfigError) as info:
        load_project("gyre.yaml")
    assert str(info.value).splitlines()[0] == cited


def test_exponent_numbers_are_numbers(tmp_path: Path) -> None:
    # PyYAML alone (YAML 1.1) would read 1e-3 as the string "1e-3".
    text = BASE.replace("    target: cnt\n", "    target: cnt\n    params: {learning_rate: 1e-3}\n")
    cfg = load_project(project(tmp_path, text))
    assert cfg.model("demand").params == {"learning_rate": 0.001}


def test_display_name(tmp_path: Path) -> None:
    path = project(tmp_path, BASE.replace("task: regression", "task: regresion"))
    with pytest.raises(ConfigError, match=r"^gyre\.yaml:14 models\.demand\.task: expected"):
        load_project(path, display_name="gyre.yaml")
