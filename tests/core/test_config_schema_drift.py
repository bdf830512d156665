"""The `schema_drift` key of a source in gyre.yaml: defaults, shorthand, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gyre.core.config import SchemaDriftConfig, load_project
from gyre.core.errors import ConfigError


def load(tmp_path: Path, drift: str | None) -> SchemaDriftConfig:
    text = "project: shop\nsources:\n  orders:\n    type: csv\n"
    if drift is not None:
        text += f"    schema_drift: {drift}\n"
    (tmp_path / "gyre.yaml").write_text(text)
    config = load_project(tmp_path, check_files=False)
    return config.source("orders").schema_drift


def test_defaults(tmp_path: Path) -> None:
    drift = load(tmp_path, None)
    assert (drift.tables, drift.columns, drift.data_type) == ("evolve", "evolve", "discard_row")
    assert drift.model_fields_set == set()


def test_each_entity_takes_a_mode(tmp_path: Path) -> None:
    drift = load(tmp_path, "{tables: freeze, columns: discard_value, data_type: evolve}")
    assert (drift.tables, drift.columns, drift.data_type) == ("freeze", "discard_value", "evolve")
    assert drift.model_fields_set == {"tables", "columns", "data_type"}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("freeze", ("freeze", "freeze", "freeze")),
        ("evolve", ("evolve", "evolve", "evolve")),
        ("discard_row", ("evolve", "discard_row", "discard_row")),
    ],
)
def test_one_mode_for_everything(tmp_path: Path, mode: str, expected: tuple[str, ...]) -> None:
    drift = load(tmp_path, mode)
    assert (drift.tables, drift.columns, drift.data_type) == expected


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        (
            "{columns: evolv}",
            "gyre.yaml:5 sources.orders.schema_drift.columns: expected 'evolve', 'freeze', "
            "'discard_row' or 'discard_value', got 'evolv'",
        ),
        (
            "{column: freeze}",
            "gyre.yaml:5 sources.orders.schema_drift.column: unknown key 'column'; expected one "
            "of tables, columns, data_type",
        ),
        (
            "sometimes",
            "gyre.yaml:5 sources.orders.schema_drift: expected one of evolve, freeze, "
            "discard_row, discard_value or a mapping",
        ),
        (
            "{tables: discard_row}",
            "gyre.yaml:5 sources.orders.schema_drift.tables: `discard_row` does not apply to "
            "tables",
        ),
    ],
)
def test_mistakes_name_the_file_line_and_key(tmp_path: Path, drift: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, drift)
    assert str(raised.value).startswith(str(tmp_path / message.split(":", 1)[0]) + ":")
    assert message.split(" ", 1)[1] in str(raised.value)


def test_the_config_is_frozen() -> None:
    drift = SchemaDriftConfig()
    with pytest.raises(ValueError, match="frozen"):
        drift.columns = "freeze"  # type: ignore[misc]
