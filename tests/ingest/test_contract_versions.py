"""Contract versions: what evolved on top of a contract file, canonical content and diffs."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.yaml_positions import parse_yaml
from gyre.ingest.contract import Contract, parse_contract
from gyre.ingest.contract_versions import (
    EvolvedColumn,
    apply_evolved,
    canonical_yaml,
    column_diff,
    column_summaries,
    merge_evolved,
    widen_spec,
)

FILE = """\
# comments and layout do not make a new version
columns:
  - {name: id, type: int, min: 1}
  - {name: season, type: int, allowed: [1, 2, 3, 4]}
unique: [id]
"""


def contract(text: str = FILE) -> Contract:
    return parse_contract(parse_yaml(text, "c.yaml"))


def test_added_and_widened_columns_apply_to_the_file() -> None:
    evolved = [EvolvedColumn("promo", "string"), EvolvedColumn("season", "string", "int")]
    effective, kept = apply_evolved(contract(), evolved)
    assert kept == tuple(evolved)
    assert effective.column_names == ("id", "season", "promo")
    promo = effective.columns[2]
    assert (promo.type, promo.nullable) == ("string", True)
    season = effective.columns[1]
    assert (season.type, season.allowed) == ("string", ("1", "2", "3", "4"))


def test_the_file_wins_over_what_evolved() -> None:
    evolved = [EvolvedColumn("promo", "string"), EvolvedColumn("season", "float", "int")]
    edited = FILE.replace(
        "unique: [id]",
        "  - {name: promo, type: int, nullable: true}\nunique: [id]",
    ).replace("{name: season, type: int,", "{name: season, type: float,")
    effective, kept = apply_evolved(contract(edited), evolved)
    assert kept == ()
    assert [(c.name, c.type) for c in effective.columns] == [
        ("id", "int"),
        ("season", "float"),
        ("promo", "int"),
    ]


def test_merge_keeps_the_first_origin_and_the_latest_type() -> None:
    merged = merge_evolved(
        [EvolvedColumn("promo", "int"), EvolvedColumn("id", "float", "int")],
        [EvolvedColumn("promo", "string", "int"), EvolvedColumn("id", "string", "float")],
    )
    assert merged == (EvolvedColumn("promo", "string", None), EvolvedColumn("id", "string", "int"))


def test_widen_spec_keeps_rules_that_still_apply() -> None:
    spec = contract().columns[0]
    assert widen_spec(spec, "float").min == 1
    assert widen_spec(spec, "string").min is None
    assert widen_spec(spec, "int") is spec


def test_canonical_content_ignores_comments_and_layout_and_reads_back() -> None:
    reflowed = "unique: [id]\ncolumns:\n- name: id\n  type: int\n  min: 1\n" + (
        "- {name: season, allowed: [1, 2, 3, 4], type: int}\n"
    )
    assert canonical_yaml(contract()) == canonical_yaml(contract(reflowed))
    assert parse_contract(parse_yaml(canonical_yaml(contract()).decode(), "x.yaml")) == contract()
    changed = FILE.replace("min: 1", "min: 0")
    assert canonical_yaml(contract(changed)) != canonical_yaml(contract())


def test_column_diff_names_each_change() -> None:
    before = column_summaries(contract())
    after = column_summaries(
        contract(
            "columns:\n  - {name: id, type: float, min: 0, nullable: true}\n"
            "  - {name: note, type: string, nullable: true}\n"
        )
    )
    assert column_diff(before, after) == [
        "~ id: int -> float",
        "~ id: now nullable",
        "~ id: min 1 -> 0",
        "+ note: string, nullable",
        "- season",
    ]
    assert column_diff(before, before) == []


names = st.sampled_from(["a", "b", "c", "d"])
types = st.sampled_from(["int", "float", "string", "bool", "date", "timestamp"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(names, types, st.booleans()), max_size=8))
def test_applying_what_evolved_is_stable(entries: list[tuple[str, str, bool]]) -> None:
    """Applying the kept entries again changes nothing: a batch that evolves nothing never
    registers a new version."""
    evolved = [
        EvolvedColumn(n, t, "int" if widened else None)  # type: ignore[arg-type]
        for n, t, widened in entries
    ]
    base = contract("columns:\n  - {name: a, type: int}\n  - {name: b, type: int}\n")
    effective, kept = apply_evolved(base, merge_evolved([], evolved))
    again, kept_again = apply_evolved(base, kept)
    assert again == effective and kept_again == kept
    assert canonical_yaml(again) == canonical_yaml(effective)
    assert yaml.safe_load(canonical_yaml(effective))["columns"][0]["name"] == "a"
