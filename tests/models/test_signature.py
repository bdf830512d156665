"""Signatures: inferred from Arrow tables, JSON round trips, and the shared input encoder."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pydantic import ValidationError

from gyre.core.errors import DataError
from gyre.models import ModelSignature, TensorSpec, encode_inputs, encode_target, infer_signature


def _table() -> pa.Table:
    return pa.table(
        {
            "hr": pa.array([0, 5, 23], pa.int64()),
            "temp": pa.array([0.1, None, 0.9], pa.float64()),
            "cold": pa.array([True, False, None]),
            "weather": pa.array(["rain", "sun", "rain"]),
            "kind": pa.array(["a", "b", "a"]).dictionary_encode(),
            "cnt": pa.array([3, 40, 12], pa.int32()),
            "label": pa.array(["yes", "no", "yes"]),
        }
    )


def test_infer_signature_maps_arrow_types_to_oip_datatypes() -> None:
    sig = infer_signature(
        _table(), ["hr", "temp", "cold", "weather", "kind"], target="cnt", task="regression"
    )
    assert [(s.name, s.datatype) for s in sig.inputs] == [
        ("hr", "INT64"),
        ("temp", "FP64"),
        ("cold", "BOOL"),
        ("weather", "BYTES"),
        ("kind", "BYTES"),
    ]
    assert sig.inputs[3].categories == ("rain", "sun")
    assert sig.inputs[4].categories == ("a", "b")
    assert sig.output == TensorSpec(name="cnt", datatype="FP64")
    assert sig.classes is None


def test_classification_signature_lists_sorted_classes_and_keeps_label_type() -> None:
    sig = infer_signature(_table(), ["hr"], target="label", task="classification")
    assert sig.classes == ("no", "yes")
    assert sig.output.datatype == "BYTES"
    ints = infer_signature(_table(), ["hr"], target="cnt", task="classification")
    assert ints.classes == (3, 12, 40)
    assert ints.output.datatype == "INT32"


def test_signature_json_round_trip_keeps_class_types() -> None:
    for target in ("label", "cnt"):
        sig = infer_signature(_table(), ["hr", "weather"], target=target, task="classification")
        again = ModelSignature.model_validate_json(sig.model_dump_json())
        assert again == sig
        assert [type(c) for c in again.classes or ()] == [type(c) for c in sig.classes or ()]


def test_unsupported_feature_type_names_the_column() -> None:
    table = pa.table({"when": pa.array([dt.datetime(2024, 1, 1)]), "y": [1.0]})
    with pytest.raises(DataError, match=r"'when' has type timestamp"):
        infer_signature(table, ["when"], target="y", task="regression")


def test_regression_target_must_be_numeric() -> None:
    with pytest.raises(DataError, match=r"regression target 'label'"):
        infer_signature(_table(), ["hr"], target="label", task="regression")


def test_missing_columns_are_listed() -> None:
    with pytest.raises(DataError, match=r"'nope'.*it has: hr"):
        infer_signature(_table(), ["hr", "nope"], target="cnt", task="regression")


def test_signature_validation() -> None:
    spec = TensorSpec(name="a", datatype="FP64")
    with pytest.raises(ValidationError, match=r"duplicate input names: a"):
        ModelSignature(inputs=(spec, spec), output=spec, task="regression")
    with pytest.raises(ValidationError, match=r"only BYTES inputs"):
        TensorSpec(name="a", datatype="FP64", categories=("x",))
    with pytest.raises(ValidationError, match=r"at least one input"):
        ModelSignature(inputs=(), output=spec, task="regression")
    with pytest.raises(ValidationError, match=r"only classification"):
        ModelSignature(inputs=(spec,), output=spec, task="regression", classes=(0, 1))
    with pytest.raises(ValidationError):
        TensorSpec(name="a", datatype="FLOAT")  # type: ignore[arg-type]


def test_encode_inputs_orders_by_signature_and_maps_categories() -> None:
    table = _table()
    sig = infer_signature(table, ["weather", "hr", "temp", "cold"], target="cnt", task="regression")
    x = encode_inputs(table, sig)
    expected = np.array([[0, 0, 0.1, 1], [1, 5, np.nan, 0], [0, 23, 0.9, np.nan]], dtype=np.float64)
    np.testing.assert_array_equal(x, expected)
    # A mapping in another order, with an unseen category and an extra column, encodes alike.
    cols = {
        "cold": np.array([True, False]),
        "extra": np.array([1, 2]),
        "temp": [0.5, 0.25],
        "hr": np.array([[1], [2]]),
        "weather": np.array(["snow", "sun"], dtype=object),
    }
    np.testing.assert_array_equal(
        encode_inputs(cols, sig), np.array([[np.nan, 1, 0.5, 1], [1, 2, 0.25, 0]])
    )


def test_encode_inputs_errors() -> None:
    sig = infer_signature(_table(), ["hr", "weather"], target="cnt", task="regression")
    with pytest.raises(
        DataError, match=r"missing input\(s\) 'weather'; the model expects hr, weather"
    ):
        encode_inputs({"hr": [1]}, sig)
    with pytest.raises(DataError, match=r"different lengths: hr=2, weather=1"):
        encode_inputs({"hr": [1, 2], "weather": ["sun"]}, sig)
    with pytest.raises(DataError, match=r"'hr' must be numeric"):
        encode_inputs({"hr": ["1"], "weather": ["sun"]}, sig)
    with pytest.raises(DataError, match=r"'weather' is categorical"):
        encode_inputs({"hr": [1], "weather": [3]}, sig)
    with pytest.raises(DataError, match=r"one-dimensional"):
        encode_inputs({"hr": np.zeros((2, 2)), "weather": ["a", "b"]}, sig)


def test_encode_target_maps_labels_to_class_indices() -> None:
    sig = infer_signature(_table(), ["hr"], target="label", task="classification")
    np.testing.assert_array_equal(encode_target(pa.array(["yes", "no"]), sig), [1, 0])
    with pytest.raises(DataError, match=r"maybe"):
        encode_target(pa.array(["maybe"]), sig)


@settings(max_examples=50, deadline=None)
@given(
    data=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=20),
        elements=st.floats(allow_nan=True, allow_infinity=False, width=64),
    )
)
def test_encode_inputs_of_numeric_columns_is_the_column_stack(data: np.ndarray) -> None:
    names = [f"f{i}" for i in range(data.shape[1])]
    sig = ModelSignature(
        inputs=tuple(TensorSpec(name=n, datatype="FP64") for n in names),
        output=TensorSpec(name="y", datatype="FP64"),
        task="regression",
    )
    columns = {n: data[:, i] for i, n in reversed(list(enumerate(names)))}
    np.testing.assert_array_equal(encode_inputs(columns, sig), data)
    table = pa.table(columns)
    np.testing.assert_array_equal(encode_inputs(table, sig), data)
