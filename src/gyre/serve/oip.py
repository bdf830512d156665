"""Open Inference Protocol v2 messages and tensor codec (KServe v2 / Triton HTTP).

Pydantic models for the JSON bodies, plus the conversion between OIP tensors and numpy arrays,
including Triton's *binary tensor data* extension: ``tritonclient`` sends inputs as raw
little-endian bytes after the JSON header by default (``Inference-Header-Content-Length`` gives
the JSON length) and asks for binary outputs unless told otherwise, so supporting it is what
lets that client work unchanged. Request models ignore unknown fields because real clients send
extra ones (``model_name`` in the body, vendor ``parameters``).

Every problem with a request raises :class:`ProtocolError` carrying the HTTP status to answer
with; the app turns it into the protocol's ``{"error": "..."}`` body.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gyre.core.errors import ServeError

BINARY_HEADER = "inference-header-content-length"

# Little-endian numpy dtypes for the fixed-width OIP datatypes.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = frozenset([*NUMPY_DTYPES, "BYTES"])


class ProtocolError(ServeError):
    """A request the server cannot answer; ``status`` is the HTTP status code to send."""

    def __init__(self, message: str, *, status: int = 400, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Lenient):
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    parameters: dict[str, Any] | None = None


class RequestOutput(_Lenient):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Lenient):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResponseOutput(_Message):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferenceResponse(_Message):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(_Message):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(_Message):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(_Message):
    name: str
    version: str
    extensions: list[str]


def parse_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """Split a body into its JSON request and the binary tensor data that follows it."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"Inference-Header-Content-Length '{header_length}' is not a number"
            ) from None
        if not 0 <= n <= len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)"
            )
        body, binary = body[:n], body[n:]
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the request body is not valid JSON: {exc}") from None
    try:
        return InferenceRequest.model_validate(doc), binary
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise ProtocolError(f"invalid inference request: {problems}") from None


def _elements(shape: list[int], name: str) -> int:
    if any(d < 0 for d in shape):
        raise ProtocolError(f"input '{name}' has a negative dimension in shape {shape}")
    return math.prod(shape)


def _decode_bytes_elements(raw: bytes, name: str) -> list[str]:
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ProtocolError(f"input '{name}': truncated BYTES element length")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > len(raw):
            raise ProtocolError(f"input '{name}': BYTES element runs past the tensor data")
        out.append(raw[pos : pos + size].decode("utf-8", errors="replace"))
        pos += size
    return out


def _from_binary(tensor: RequestInput, raw: bytes) -> npt.NDArray[Any]:
    if tensor.datatype == "BYTES":
        return np.asarray(_decode_bytes_elements(raw, tensor.name), dtype=object)
    dtype = np.dtype(NUMPY_DTYPES[tensor.datatype])
    if len(raw) % dtype.itemsize:
        raise ProtocolError(
            f"input '{tensor.name}': {len(raw)} bytes is not a whole number of "
            f"{tensor.datatype} elements"
        )
    return np.frombuffer(raw, dtype=dtype)


def _is_number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _from_json(tensor: RequestInput) -> npt.NDArray[Any]:
    name, datatype = tensor.name, tensor.datatype
    if tensor.data is None:
        raise ProtocolError(f"input '{name}' has no data")
    try:
        arr = np.asarray(tensor.data)
    except ValueError:
        raise ProtocolError(f"input '{name}': data is a ragged nested list") from None
    flat = arr.reshape(-1)
    kind = flat.dtype.kind
    if datatype == "BYTES":
        if kind in "US" or flat.size == 0:
            return flat.astype(object)
        if kind == "O" and all(isinstance(v, str) or v is None for v in flat):
            return flat
    elif datatype == "BOOL":
        if kind == "b" or flat.size == 0:
            return flat.astype(bool)
    elif datatype.startswith(("INT", "UINT")):
        if kind in "iu" or flat.size == 0:
            return flat.astype(NUMPY_DTYPES[datatype])
    else:  # FP16, FP32, FP64: JSON integers are fine for a float tensor, booleans are not
        if kind in "iuf" or flat.size == 0:
            return flat.astype(np.float64)
        if kind == "O" and all(_is_number_or_null(v) for v in flat):
            # JSON null in a float tensor is a missing value (NaN), which tree models accept.
            return np.asarray([np.nan if v is None else v for v in flat], dtype=np.float64)
    raise ProtocolError(
        f"input '{name}' is declared {datatype} but its data holds values like "
        f"{flat[:3].tolist()!r}"
    )


def decode_tensor(tensor: RequestInput, binary: bytes, offset: int) -> tuple[npt.NDArray[Any], int]:
    """Decode one input tensor into an array of its shape; returns the new binary offset."""
    if tensor.datatype not in DATATYPES:
        raise ProtocolError(
            f"input '{tensor.name}' has unknown datatype '{tensor.datatype}'; OIP datatypes are "
            f"{', '.join(sorted(DATATYPES))}"
        )
    n = _elements(tensor.shape, tensor.name)
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ProtocolError(
                f"input '{tensor.name}': binary_data_size {size!r} does not fit the "
                f"{len(binary) - offset} bytes of tensor data left in the body"
            )
        flat = _from_binary(tensor, binary[offset : offset + size])
        offset += size
    else:
        flat = _from_json(tensor)
    if flat.size != n:
        raise ProtocolError(
            f"input '{tensor.name}' has {flat.size} values but its shape {tensor.shape} needs {n}"
        )
    return flat.reshape(tensor.shape), offset


def _json_values(arr: npt.NDArray[Any], datatype: str) -> list[Any]:
    if datatype == "BYTES":
        return [str(v) for v in arr.tolist()]
    if datatype.startswith("FP") and not np.all(np.isfinite(arr)):
        # JSON has no NaN or infinity; null is the honest encoding of "no number".
        return [v if math.isfinite(v) else None for v in arr.astype(np.float64).tolist()]
    values: list[Any] = arr.astype(NUMPY_DTYPES[datatype]).tolist()
    return values


def _to_binary(arr: npt.NDArray[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in arr.tolist():
            data = str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=NUMPY_DTYPES[datatype]).tobytes()


def encode_output(
    name: str, arr: npt.NDArray[Any], datatype: str, *, binary: bool
) -> tuple[ResponseOutput, bytes]:
    """One response tensor: JSON data, or binary data (returned separately) if asked for."""
    shape = list(arr.shape)
    if binary:
        raw = _to_binary(arr.reshape(-1), datatype)
        params = {"binary_data_size": len(raw)}
        return ResponseOutput(name=name, shape=shape, datatype=datatype, parameters=params), raw
    data = _json_values(arr.reshape(-1), datatype)
    return ResponseOutput(name=name, shape=shape, datatype=datatype, data=data), b""
