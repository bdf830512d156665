"""Reference profiles: a compact picture of a table's feature distributions, built once.

A :class:`ReferenceProfile` is built when a model version is trained, from its training rows,
and stored as JSON in the artifact store next to the model package; the monitor stage compares
served traffic with it (``gyre.monitor.drift``) without re-reading the training data.

* numeric features: up to 10 quantile bins (edges deduplicated, so heavily tied data gets fewer
  bins; a feature with at most 10 distinct values gets one bin per value) with the reference
  proportion in each, plus a seeded uniform random sample of up to 5,000 values for the
  two-sample Kolmogorov-Smirnov test (the same distribution a reservoir sample has);
* string features: the proportion of each category.

It lives with datasets (floor 2) because it describes data, and both the train stage (which
builds it) and the monitor stage (which reads it) may import this floor but not each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import DataError

FloatArray = npt.NDArray[np.float64]
DEFAULT_BINS: Final = 10
DEFAULT_SAMPLE: Final = 5_000
_FORMAT: Final = "gyre.reference_profile/1"


def bin_counts(values: FloatArray, edges: FloatArray) -> npt.NDArray[np.int64]:
    """Counts per bin; bin i is ``[edges[i-1], edges[i])``, the outer bins are open-ended."""
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=edges.size + 1).astype(np.int64)


def _cut_points(values: FloatArray, bins: int) -> FloatArray:
    distinct = np.unique(values)
    if distinct.size == 1:
        # Constant reference: bins below, at, and above the constant.
        c = distinct[0]
        return np.array([c, np.nextafter(c, np.inf)])
    if distinct.size <= bins:
        return distinct[1:]  # one bin per value; anything between values joins the lower one
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return edges[1:-1]


def proportions(counts: npt.NDArray[np.int64]) -> FloatArray:
    total = counts.sum()
    if total == 0:
        return np.zeros(counts.size)
    return np.asarray(counts / total, dtype=np.float64)


@dataclass(frozen=True)
class NumericProfile:
    """Reference bins of one numeric feature: ``len(edges) + 1`` proportions and a KS sample."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    sample: tuple[float, ...]
    n: int
    n_missing: int
    kind: Literal["numeric"] = "numeric"


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference proportion of each category of one string feature."""

    categories: tuple[str, ...]
    proportions: tuple[float, ...]
    n: int
    n_missing: int
    kind: Literal["categorical"] = "categorical"


FeatureProfile = NumericProfile | CategoricalProfile


def is_numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return is_text(kind.value_type)
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def numeric_values(column: pa.ChunkedArray) -> tuple[FloatArray, int]:
    values = np.asarray(column.cast(pa.float64()).to_numpy(), dtype=np.float64)
    finite = values[np.isfinite(values)]
    return finite, int(values.size - finite.size)


def category_counts(column: pa.ChunkedArray) -> tuple[dict[str, int], int]:
    strings = column.cast(pa.string())
    counts = pc.value_counts(strings.drop_null())
    names = counts.field("values").to_pylist()
    sizes = counts.field("counts").to_pylist()
    return dict(zip(names, sizes, strict=True)), int(strings.null_count)


def feature_column(table: pa.Table, feature: str, where: str) -> pa.ChunkedArray:
    if feature not in table.column_names:
        raise DataError(
            f"feature '{feature}' is not a column of the {where} data",
            hint=f"columns there are: {', '.join(table.column_names)}",
        )
    return table.column(feature)


@dataclass(frozen=True)
class ReferenceProfile:
    """What the training data looked like, feature by feature, for later drift checks."""

    features: Mapping[str, FeatureProfile]
    n_rows: int
    seed: int = 0

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        features: Sequence[str],
        *,
        bins: int = DEFAULT_BINS,
        sample_size: int = DEFAULT_SAMPLE,
        seed: int = 0,
    ) -> ReferenceProfile:
        """Profile ``features`` of ``table``; numbers get bins and a sample, strings categories."""
        if bins < 1 or sample_size < 1:
            raise DataError(f"bins and sample_size must be positive, got {bins}, {sample_size}")
        rng = np.random.default_rng(seed)
        profiles: dict[str, FeatureProfile] = {}
        for feature in features:
            column = feature_column(table, feature, "reference")
            if is_numeric(column.type):
                values, missing = numeric_values(column)
                if values.size == 0:
                    raise DataError(
                        f"reference feature '{feature}' has no finite values to profile",
                        hint="drop the feature from the monitor or fix the training data",
                    )
                edges = _cut_points(values, bins)
                if values.size > sample_size:
                    chosen = np.sort(rng.choice(values.size, size=sample_size, replace=False))
                    sample = values[chosen]
                else:
                    sample = values
                profiles[feature] = NumericProfile(
                    edges=tuple(edges.tolist()),
                    proportions=tuple(proportions(bin_counts(values, edges)).tolist()),
                    sample=tuple(sample.tolist()),
                    n=int(values.size),
                    n_missing=missing,
                )
            elif is_text(column.type):
                counts, missing = category_counts(column)
                if not counts:
                    raise DataError(f"reference feature '{feature}' has only missing values")
                names = sorted(counts)
                total = sum(counts.values())
                profiles[feature] = CategoricalProfile(
                    categories=tuple(names),
                    proportions=tuple(counts[name] / total for name in names),
                    n=total,
                    n_missing=missing,
                )
            else:
                raise DataError(
                    f"feature '{feature}' has type {column.type}, which drift cannot profile",
                    hint="drift monitors numeric and string features",
                )
        return cls(features=profiles, n_rows=int(table.num_rows), seed=seed)

    def to_json(self) -> str:
        """The profile as JSON text (floats round-trip exactly)."""
        features: dict[str, dict[str, Any]] = {}
        for name, profile in self.features.items():
            if isinstance(profile, NumericProfile):
                features[name] = {
                    "kind": "numeric",
                    "edges": list(profile.edges),
                    "proportions": list(profile.proportions),
                    "sample": list(profile.sample),
                    "n": profile.n,
                    "n_missing": profile.n_missing,
                }
            else:
                features[name] = {
                    "kind": "categorical",
                    "categories": list(profile.categories),
                    "proportions": list(profile.proportions),
                    "n": profile.n,
                    "n_missing": profile.n_missing,
                }
        document = {"format": _FORMAT, "n_rows": self.n_rows, "seed": self.seed}
        return json.dumps({**document, "features": features}, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        """Read a profile written by :meth:`to_json`."""
        try:
            document = json.loads(text)
            if document.get("format") != _FORMAT:
                raise ValueError(f"format is {document.get('format')!r}, expected {_FORMAT!r}")
            features: dict[str, FeatureProfile] = {}
            for name, item in document["features"].items():
                if item["kind"] == "numeric":
                    features[name] = NumericProfile(
                        edges=tuple(float(x) for x in item["edges"]),
                        proportions=tuple(float(x) for x in item["proportions"]),
                        sample=tuple(float(x) for x in item["sample"]),
                        n=int(item["n"]),
                        n_missing=int(item["n_missing"]),
                    )
                elif item["kind"] == "categorical":
                    features[name] = CategoricalProfile(
                        categories=tuple(str(x) for x in item["categories"]),
                        proportions=tuple(float(x) for x in item["proportions"]),
                        n=int(item["n"]),
                        n_missing=int(item["n_missing"]),
                    )
                else:
                    raise ValueError(f"feature '{name}' has unknown kind {item['kind']!r}")
            return cls(features=features, n_rows=int(document["n_rows"]), seed=document["seed"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(
                f"reference profile JSON is not readable: {exc}",
                hint="rebuild it with ReferenceProfile.from_table(...).to_json()",
            ) from exc
