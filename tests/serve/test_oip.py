"""The OIP tensor codec: JSON and binary forms decode to the same arrays they encode from."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gyre.serve.oip import (
    NUMPY_DTYPES,
    ProtocolError,
    RequestInput,
    decode_tensor,
    encode_output,
    parse_request,
)

NUMERIC = sorted(NUMPY_DTYPES)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_binary_round_trip_for_every_fixed_width_datatype(data: st.DataObject) -> None:
    datatype = data.draw(st.sampled_from(NUMERIC))
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    arr = data.draw(
        hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=None)
    )
    out, raw = encode_output("t", arr, datatype, binary=True)
    assert out.parameters == {"binary_data_size": len(raw)}
    tensor = RequestInput(
        name="t", shape=list(arr.shape), datatype=datatype, parameters=out.parameters
    )
    decoded, offset = decode_tensor(tensor, b"xx" + raw, 2)
    assert offset == 2 + len(raw)
    np.testing.assert_array_equal(decoded, arr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=0, max_size=8))
def test_bytes_round_trip_binary_and_json(values: list[str]) -> None:
    arr = np.asarray(values, dtype=object)
    out, raw = encode_output("s", arr, "BYTES", binary=True)
    tensor = RequestInput(
        name="s", shape=[len(values)], datatype="BYTES", parameters=out.parameters
    )
    assert decode_tensor(tensor, raw, 0)[0].tolist() == [
        v.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for v in values
    ]
    as_json, _ = encode_output("s", arr, "BYTES", binary=False)
    assert as_json.data == values


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
        elements=st.floats(allow_nan=False, allow_infinity=False),
    )
)
def test_json_round_trip_through_real_json(arr: np.ndarray) -> None:
    out, _ = encode_output("y", arr, "FP64", binary=False)
    wire = json.loads(json.dumps(out.model_dump()))
    tensor = RequestInput(name="y", shape=wire["shape"], datatype="FP64", data=wire["data"])
    np.testing.assert_array_equal(decode_tensor(tensor, b"", 0)[0], arr)


def test_non_finite_outputs_become_null_in_json() -> None:
    out, _ = encode_output("y", np.array([1.0, np.nan, np.inf]), "FP64", binary=False)
    assert out.data == [1.0, None, None]


def test_parse_request_errors() -> None:
    with pytest.raises(ProtocolError, match="not valid JSON"):
        parse_request(b"nope", None)
    with pytest.raises(ProtocolError, match=r"inputs: .*at least 1"):
        parse_request(b'{"inputs": []}', None)
    with pytest.raises(ProtocolError, match="outside the body"):
        parse_request(b"{}", "10")
    head = b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP32"}]}'
    request, binary = parse_request(head + b"xyz", str(len(head)))
    assert (request.inputs[0].name, binary) == ("a", b"xyz")
    extra = b'{"model_name":"m","inputs":[{"name":"a","shape":[1],"datatype":"FP64","data":[1]}]}'
    assert parse_request(extra, None)[0].inputs[0].data == [1]  # unknown fields are ignored


def test_decode_tensor_errors() -> None:
    with pytest.raises(ProtocolError, match="negative dimension"):
        decode_tensor(RequestInput(name="a", shape=[-1], datatype="FP64", data=[1]), b"", 0)
    with pytest.raises(ProtocolError, match="has no data"):
        decode_tensor(RequestInput(name="a", shape=[1], datatype="FP64"), b"", 0)
    with pytest.raises(ProtocolError, match="whole number of FP64"):
        params = {"binary_data_size": 5}
        decode_tensor(
            RequestInput(name="a", shape=[1], datatype="FP64", parameters=params), b"12345", 0
        )
    with pytest.raises(ProtocolError, match="truncated BYTES"):
        params = {"binary_data_size": 2}
        decode_tensor(
            RequestInput(name="a", shape=[1], datatype="BYTES", parameters=params), b"\x01\x00", 0
        )
    with pytest.raises(ProtocolError, match="runs past"):
        params = {"binary_data_size": 5}
        raw = b"\x09\x00\x00\x00a"
        decode_tensor(
            RequestInput(name="a", shape=[1], datatype="BYTES", parameters=params), raw, 0
        )


def test_importing_the_stages_stays_light() -> None:
    """Heavy libraries load when a trainer, flavor or app is used, not on import."""
    code = (
        "import sys, gyre.models, gyre.train, gyre.validate, gyre.serve\n"
        "heavy = {'lightgbm', 'sklearn', 'fastapi', 'uvicorn', 'prometheus_client'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
