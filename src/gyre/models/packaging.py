"""Model packages: one content-addressed manifest that names everything needed to predict.

:func:`save_model` writes the model's files as blobs in the artifact store, then a canonical-JSON
manifest ``{format_version, flavor, signature, metadata, requirements, files: {name: id}}`` whose
content id *is* the package id. The same model and metadata therefore always get the same id, and
a package can never change under its id. :func:`load_model` reads it back as a
:class:`LoadedModel` that checks and encodes inputs through the signature before predicting.

    package_id = save_model(store, booster, flavor="lightgbm", signature=sig, metadata={})
    model = load_model(store, package_id)
    y = model.predict({"hr": hours, "temp": temps})

How a model becomes bytes is a *flavor*, registered by name: ``lightgbm`` stores the booster's
text dump (deterministic, readable, safe to load); ``sklearn`` stores a pickle. **Loading a pickle
runs code chosen by whoever wrote it**, so only load sklearn packages from your own store, never
from a store that others can write to. Third parties add flavors with :func:`register_flavor` or
the ``gyre.flavors`` entry-point group (value ``package.module:factory``).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError

from gyre.core.errors import ArtifactError, ConfigError
from gyre.models.signature import Columns, ModelSignature, encode_inputs

if TYPE_CHECKING:
    import pyarrow as pa

    from gyre.core.artifacts import ArtifactStore

FORMAT_VERSION = 1
ENTRY_POINT_GROUP = "gyre.flavors"
log = logging.getLogger(__name__)


class Predictor(Protocol):
    """A deserialised model, fed the float64 matrix that :func:`encode_inputs` builds.

    For classification, ``predict`` returns class indices into ``signature.classes`` and
    ``predict_proba`` an ``(n, n_classes)`` matrix (or ``None`` if the model has none).
    """

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[Any]: ...

    def predict_proba(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None: ...


class Flavor(Protocol):
    """Turns one kind of model into named files and back."""

    def requirements(self) -> dict[str, str]:
        """Library versions the files depend on, recorded in the manifest."""
        ...

    def dump(self, model: Any, signature: ModelSignature) -> dict[str, bytes]: ...

    def load(self, files: Mapping[str, bytes], signature: ModelSignature) -> Predictor: ...


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


class _BoosterPredictor:
    def __init__(self, booster: Any, signature: ModelSignature) -> None:
        self.booster = booster
        self.classification = signature.task == "classification"

    def predict_proba(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        if not self.classification:
            return None
        raw = np.asarray(self.booster.predict(x), dtype=np.float64)
        if raw.ndim == 1:  # binary objectives return P(class 1) only
            return np.column_stack([1.0 - raw, raw])
        return raw

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        proba = self.predict_proba(x)
        if proba is not None:
            return np.asarray(np.argmax(proba, axis=1), dtype=np.int64)
        return np.asarray(self.booster.predict(x), dtype=np.float64)


class LightGBMFlavor:
    """A LightGBM ``Booster`` (or sklearn-API ``LGBMModel``) as its text dump, ``model.txt``."""

    def requirements(self) -> dict[str, str]:
        return {"lightgbm": _version("lightgbm")}

    def dump(self, model: Any, signature: ModelSignature) -> dict[str, bytes]:
        import lightgbm as lgb

        booster = getattr(model, "booster_", model)
        if not isinstance(booster, lgb.Booster):
            raise ArtifactError(
                f"the lightgbm flavor needs a lightgbm Booster or LGBMModel, got "
                f"{type(model).__name__}",
                hint="use flavor='sklearn' for scikit-learn estimators",
            )
        _check_width(booster.num_feature(), signature)
        return {"model.txt": booster.model_to_string().encode("utf-8")}

    def load(self, files: Mapping[str, bytes], signature: ModelSignature) -> Predictor:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=files["model.txt"].decode("utf-8"))
        _check_width(booster.num_feature(), signature)
        return _BoosterPredictor(booster, signature)


class _EstimatorPredictor:
    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        return np.asarray(self.estimator.predict(x))

    def predict_proba(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        if not hasattr(self.estimator, "predict_proba"):
            return None
        return np.asarray(self.estimator.predict_proba(x), dtype=np.float64)


class SklearnFlavor:
    """Any picklable object with ``predict`` (scikit-learn estimators, pipelines), ``model.pkl``.

    Pickles run arbitrary code when loaded: only load packages from a store you control.
    """

    def requirements(self) -> dict[str, str]:
        return {"scikit-learn": _version("scikit-learn")}

    def dump(self, model: Any, signature: ModelSignature) -> dict[str, bytes]:
        import pickle

        if not callable(getattr(model, "predict", None)):
            raise ArtifactError(
                f"the sklearn flavor needs an object with a predict() method, got "
                f"{type(model).__name__}"
            )
        width = getattr(model, "n_features_in_", None)
        if isinstance(width, int):
            _check_width(width, signature)
        return {"model.pkl": pickle.dumps(model, protocol=5)}

    def load(self, files: Mapping[str, bytes], signature: ModelSignature) -> Predictor:
        import pickle

        # Unpickling runs code from the package: safe only because packages come from our store.
        return _EstimatorPredictor(pickle.loads(files["model.pkl"]))


def _check_width(n_features: int, signature: ModelSignature) -> None:
    if n_features != len(signature.inputs):
        raise ArtifactError(
            f"the model takes {n_features} features but its signature lists "
            f"{len(signature.inputs)} inputs ({', '.join(signature.input_names)})",
            hint="build the signature from the same feature list the model was trained on",
        )


FlavorFactory = Callable[[], Flavor]
# Factories, not instances: a flavor is only built (and its library only imported) when used.
_FACTORIES: dict[str, FlavorFactory | str] = {
    "lightgbm": LightGBMFlavor,
    "sklearn": SklearnFlavor,
}
_FLAVORS: dict[str, Flavor] = {}


def register_flavor(name: str, loader: FlavorFactory | str) -> None:
    """Register a flavor under ``name``: a zero-argument factory or a ``module:attr`` path."""
    _FACTORIES[name] = loader
    _FLAVORS.pop(name, None)


def known_flavors() -> list[str]:
    names = set(_FACTORIES)
    names.update(ep.name for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _resolve(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import '{path}': {exc}") from None
    return obj


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name`` (a :class:`ConfigError` listing the known ones)."""
    if name in _FLAVORS:
        return _FLAVORS[name]
    loader = _FACTORIES.get(name)
    if loader is None:
        for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                loader = ep.value
                break
    if loader is None:
        raise ConfigError(
            f"unknown model flavor '{name}'; known flavors: {', '.join(known_flavors())}",
            hint="install the package that provides it, or call "
            "gyre.models.register_flavor(name, factory)",
        )
    factory = _resolve(loader) if isinstance(loader, str) else loader
    flavor: Flavor = factory()
    _FLAVORS[name] = flavor
    return flavor


class PackageManifest(BaseModel):
    """The JSON document a package id names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int
    flavor: str
    signature: ModelSignature
    metadata: dict[str, Any]
    requirements: dict[str, str]
    files: dict[str, str]


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: equal documents get equal bytes."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def save_model(
    artifacts: ArtifactStore,
    model: Any,
    *,
    flavor: str,
    signature: ModelSignature,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Store ``model`` as a package and return the package id (the manifest's content id)."""
    impl = get_flavor(flavor)
    files = impl.dump(model, signature)
    manifest = {
        "format_version": FORMAT_VERSION,
        "flavor": flavor,
        "signature": signature.model_dump(mode="json"),
        "metadata": dict(metadata or {}),
        "requirements": impl.requirements(),
        "files": {name: artifacts.put_bytes(data) for name, data in sorted(files.items())},
    }
    try:
        document = canonical_json(manifest)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"model metadata is not plain JSON: {exc}",
            hint="metadata values must be strings, finite numbers, booleans, None, lists or "
            "dicts with string keys",
        ) from None
    return artifacts.put_bytes(document)


def read_manifest(artifacts: ArtifactStore, package_id: str) -> PackageManifest:
    """The manifest of a package, without loading the model."""
    raw = artifacts.get_bytes(package_id)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError(f"{package_id} is not a model package (not JSON)") from None
    if not isinstance(doc, dict) or "flavor" not in doc or "files" not in doc:
        raise ArtifactError(f"{package_id} is not a model package (no flavor or files)")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"model package {package_id} has format version {version}; this Gyre reads "
            f"version {FORMAT_VERSION}",
            hint="upgrade Gyre to load packages written by a newer version",
        )
    try:
        return PackageManifest.model_validate(doc)
    except ValidationError as exc:
        raise ArtifactError(f"model package {package_id} has an invalid manifest: {exc}") from None


class LoadedModel:
    """A package ready to predict: checks inputs against the signature, then calls the model."""

    def __init__(self, package_id: str, manifest: PackageManifest, predictor: Predictor) -> None:
        self.package_id = package_id
        self.flavor = manifest.flavor
        self.signature = manifest.signature
        self.metadata = manifest.metadata
        self.requirements = manifest.requirements
        self._predictor = predictor

    @property
    def input_names(self) -> list[str]:
        return self.signature.input_names

    def predict(self, columns: Columns | pa.Table) -> npt.NDArray[Any]:
        """Predict from named columns (extra columns are ignored, missing ones are an error).

        Regression returns float64 values; classification returns the class labels.
        """
        x = encode_inputs(columns, self.signature)
        out = self._predictor.predict(x)
        classes = self.signature.classes
        if self.signature.task == "classification" and classes is not None:
            return np.asarray(list(classes))[np.asarray(out, dtype=np.int64)]
        if self.signature.task == "regression":
            return np.asarray(out, dtype=np.float64)
        return np.asarray(out)

    def predict_proba(self, columns: Columns | pa.Table) -> npt.NDArray[np.float64] | None:
        """Class probabilities, columns in ``signature.classes`` order; ``None`` if unavailable."""
        if self.signature.task != "classification":
            return None
        return self._predictor.predict_proba(encode_inputs(columns, self.signature))

    def __repr__(self) -> str:
        return f"LoadedModel({self.package_id[:15]}…, flavor={self.flavor!r})"


def load_model(artifacts: ArtifactStore, package_id: str) -> LoadedModel:
    """Load the package ``package_id`` from ``artifacts``."""
    manifest = read_manifest(artifacts, package_id)
    impl = get_flavor(manifest.flavor)
    for package, wanted in manifest.requirements.items():
        have = _version(package)
        if have != wanted:
            # Booster text loads across versions; pickles may not, and fail in odd ways.
            log.warning(
                "model package %s was written with %s %s; this environment has %s",
                package_id,
                package,
                wanted,
                have,
            )
    files = {name: artifacts.get_bytes(cid) for name, cid in manifest.files.items()}
    try:
        predictor = impl.load(files, manifest.signature)
    except KeyError as exc:
        raise ArtifactError(f"model package {package_id} lacks the file {exc}") from None
    return LoadedModel(package_id, manifest, predictor)
