"""The shared pieces of source reads: ``${ENV}`` expansion, exact JSON state values, and
row-position texts that read the same whether Arrow or Python writes them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gyre.core.errors import ConfigError
from gyre.ingest.source_batch import (
    decode_value,
    encode_value,
    expand_env,
    position_text,
    position_texts,
)


@given(
    st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))),
        st.lists(st.one_of(st.none(), st.text())),
        st.lists(st.one_of(st.none(), st.dates())),
        st.lists(st.one_of(st.none(), st.datetimes())),
        st.lists(
            st.datetimes(
                timezones=st.sampled_from(
                    [
                        dt.UTC,
                        dt.timezone(dt.timedelta(hours=2)),
                        dt.timezone(-dt.timedelta(hours=9, minutes=30)),
                    ]
                )
            )
        ),
    )
)
def test_fast_and_slow_position_texts_agree(values: list[Any]) -> None:
    # Positions of integer, text, date and timestamp keys are built by Arrow; other keys and
    # error messages format values in Python. Both must write the same text.
    assume(any(v is not None for v in values))  # else Arrow cannot know the type
    aware = any(isinstance(v, dt.datetime) and v.tzinfo for v in values)
    column = pa.chunked_array([pa.array(values, pa.timestamp("us", tz="UTC") if aware else None)])
    text = position_texts(column)
    assert text is not None
    assert text.to_pylist() == ["None" if v is None else position_text(v) for v in values]


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(),
        st.floats(allow_nan=False),
        st.datetimes(timezones=st.none() | st.just(dt.UTC)),
        st.dates(),
        st.times(),
        st.timedeltas(),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.uuids(),
        st.binary(),
    )
)
def test_cursor_values_survive_a_json_state_exactly(value: Any) -> None:
    back = decode_value(json.loads(json.dumps(encode_value(value))), "test")
    assert back == value and type(back) is type(value)
    if isinstance(value, dt.datetime):
        assert back.tzinfo == value.tzinfo


def test_environment_references_expand_and_escape() -> None:
    env = {"USER_1": "ann", "PW": "p@ss"}
    assert expand_env("x://${USER_1}:${PW}@h/$${PW}", key="url", env=env) == "x://ann:p@ss@h/${PW}"
    with pytest.raises(ConfigError, match="url: environment variable NOPE is not set"):
        expand_env("${NOPE}", key="url", env=env)
