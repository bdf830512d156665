"""What a model takes and returns, and the one place input columns become a feature matrix.

A :class:`ModelSignature` names the model's inputs (one per feature, in training order) and its
output, using Open Inference Protocol v2 datatypes (``FP64``, ``INT64``, ``BYTES``...), so the
server can publish it as model metadata unchanged. String features are categorical: the
signature records their categories, and :func:`encode_inputs` turns them into the same category
codes at training and at prediction time. Sharing one encoder is the point of this module: a
model served with a different mapping than it was trained with fails silently, which is the
worst way to fail.

    sig = infer_signature(table, ["hr", "temp", "weather"], target="cnt", task="regression")
    x = encode_inputs(table, sig)          # float64 matrix, columns in signature order
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, model_validator

from gyre.core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
Task = Literal["regression", "classification"]
ClassLabel = bool | int | float | str
Columns = Mapping[str, Any]

NUMERIC_DATATYPES: frozenset[str] = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64"}
)


class TensorSpec(BaseModel):
    """One named input or output. ``categories`` lists a ``BYTES`` input's known values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    datatype: Datatype
    categories: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _categories_only_for_bytes(self) -> TensorSpec:
        if self.categories is not None and self.datatype != "BYTES":
            raise ValueError(f"input '{self.name}': only BYTES inputs can have categories")
        return self


class ModelSignature(BaseModel):
    """A model's inputs (in the order the model consumes them), its output and its task.

    For classification ``classes`` lists the labels; the model predicts indices into it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: tuple[TensorSpec, ...]
    output: TensorSpec
    task: Task
    classes: tuple[ClassLabel, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSignature:
        if not self.inputs:
            raise ValueError("a signature needs at least one input")
        names = [spec.name for spec in self.inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate input names: {', '.join(duplicates)}")
        if self.classes is not None and self.task != "classification":
            raise ValueError("only classification signatures can list classes")
        return self

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]


_ARROW_TO_OIP = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "halffloat": "FP16",
    "float": "FP32",
    "double": "FP64",
}


def _is_string(type_: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(type_):
        return _is_string(type_.value_type)
    return bool(pa.types.is_string(type_) or pa.types.is_large_string(type_))


def _column(table: pa.Table, name: str) -> pa.Array:
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col


def datatype_of(type_: pa.DataType, *, column: str) -> Datatype:
    """The OIP datatype for an Arrow type, or a :class:`DataError` naming the column."""
    if _is_string(type_):
        return "BYTES"
    name = str(type_)
    if name in _ARROW_TO_OIP:
        return _ARROW_TO_OIP[name]  # type: ignore[return-value]
    raise DataError(
        f"column '{column}' has type {type_}, which a model cannot take as a feature",
        hint="convert it in the prepare step: numbers stay numbers, labels become strings "
        "(categorical), timestamps become numeric parts such as hour or weekday",
    )


def infer_signature(
    table: pa.Table, features: Sequence[str], *, target: str, task: Task
) -> ModelSignature:
    """Derive the signature of a model trained on ``table[features]`` to predict ``target``.

    String columns become ``BYTES`` inputs whose categories are their sorted distinct values;
    for classification the classes are the sorted distinct target values.
    """
    import pyarrow.compute as pc

    missing = [f for f in [*features, target] if f not in table.column_names]
    if missing:
        raise DataError(
            f"column(s) {', '.join(map(repr, missing))} not in the table; "
            f"it has: {', '.join(table.column_names)}",
            hint="check the feature and target names in gyre.yaml",
        )
    inputs = []
    for name in features:
        col = _column(table, name)
        datatype = datatype_of(col.type, column=name)
        categories = None
        if datatype == "BYTES":
            values = pc.unique(col.drop_null()).to_pylist()
            categories = tuple(sorted(str(v) for v in values))
        inputs.append(TensorSpec(name=name, datatype=datatype, categories=categories))
    target_col = _column(table, target)
    target_type = datatype_of(target_col.type, column=target)
    classes: tuple[ClassLabel, ...] | None = None
    if task == "classification":
        classes = tuple(sorted(pc.unique(target_col.drop_null()).to_pylist()))
        output = TensorSpec(name=target, datatype=target_type)
    else:
        if target_type in ("BYTES", "BOOL"):
            raise DataError(
                f"regression target '{target}' has type {target_col.type}; it must be numeric",
                hint="use task: classification for labels, or cast the target to a number",
            )
        output = TensorSpec(name=target, datatype="FP64")
    return ModelSignature(inputs=tuple(inputs), output=output, task=task, classes=classes)


def _as_arrow(values: Any, name: str) -> pa.Array:
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        return values
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"input '{name}' must be one-dimensional, got shape {list(arr.shape)}")
    try:
        return pa.array(arr, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"input '{name}' holds values of mixed types: {exc}") from None


def _encode_column(values: Any, spec: TensorSpec) -> npt.NDArray[np.float64]:
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _as_arrow(values, spec.name)
    if spec.datatype == "BYTES":
        if not _is_string(arr.type) and not pa.types.is_null(arr.type):
            raise DataError(
                f"input '{spec.name}' is categorical (strings) but got values of type {arr.type}"
            )
        value_set = pa.array(list(spec.categories or ()), type=pa.string())
        # Unseen categories become NaN, which LightGBM treats as missing, rather than an error:
        # new labels appear in production all the time and the monitor reports them as drift.
        codes = pc.index_in(arr.cast(pa.string()), value_set=value_set)
        return np.asarray(codes.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    if not (
        pa.types.is_integer(arr.type)
        or pa.types.is_floating(arr.type)
        or pa.types.is_boolean(arr.type)
        or pa.types.is_null(arr.type)
    ):
        raise DataError(
            f"input '{spec.name}' must be numeric ({spec.datatype}) but got values of type "
            f"{arr.type}"
        )
    return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def encode_inputs(
    columns: Columns | pa.Table, signature: ModelSignature
) -> npt.NDArray[np.float64]:
    """Check and encode input columns into a float64 matrix ordered by the signature.

    ``columns`` is an Arrow table or a mapping of name to array-like; extra columns are ignored.
    Missing inputs, unequal lengths and wrongly typed values raise :class:`DataError`.
    """
    import pyarrow as pa

    if isinstance(columns, pa.Table):
        available = list(columns.column_names)
        get = columns.column
    else:
        available = list(columns)
        get = columns.__getitem__
    expected = signature.input_names
    missing = [name for name in expected if name not in available]
    if missing:
        raise DataError(
            f"missing input(s) {', '.join(map(repr, missing))}; the model expects "
            f"{', '.join(expected)}",
            hint="send one column per input named as in the model signature",
        )
    encoded = [_encode_column(get(spec.name), spec) for spec in signature.inputs]
    lengths = {spec.name: len(col) for spec, col in zip(signature.inputs, encoded, strict=True)}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise DataError(f"inputs have different lengths: {detail}")
    return np.column_stack(encoded)


def encode_target(values: Any, signature: ModelSignature) -> npt.NDArray[np.int64]:
    """Class indices of classification labels (a :class:`DataError` for unknown labels)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _as_arrow(values, signature.output.name)
    classes = list(signature.classes or ())
    codes = pc.index_in(arr, value_set=pa.array(classes, type=arr.type))
    if codes.null_count:
        unknown = pc.unique(arr.filter(pc.is_null(codes))).to_pylist()
        raise DataError(
            f"target '{signature.output.name}' has labels {unknown[:10]} that are not among "
            f"the model's classes {classes}"
        )
    return np.asarray(codes.to_numpy(zero_copy_only=False), np.int64)
