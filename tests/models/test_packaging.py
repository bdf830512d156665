"""Model packages: content-addressed manifests, round trips per flavor, and the flavor registry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from gyre.core.artifacts import ArtifactStore
from gyre.core.errors import ArtifactError, ConfigError, DataError
from gyre.models import (
    LoadedModel,
    ModelSignature,
    TensorSpec,
    encode_inputs,
    get_flavor,
    infer_signature,
    known_flavors,
    load_model,
    packaging,
    read_manifest,
    register_flavor,
    save_model,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(str(tmp_path / "objects"))


def _data(n: int = 400, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.uniform(0, 10, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = 3 * a + 0.5 * b + np.where(colour == "red", 4.0, 0.0) + rng.normal(0, 0.1, n)
    label = np.where(y > np.median(y), "high", "low")
    return pa.table({"a": a, "b": b, "colour": colour, "y": y, "label": label})


def _booster(table: pa.Table, sig: ModelSignature, rounds: int = 30) -> lgb.Booster:
    params = {"objective": "regression", "verbosity": -1, "deterministic": True, "seed": 1}
    params |= {"num_threads": 1, "force_col_wise": True}
    x = encode_inputs(table, sig)
    ds = lgb.Dataset(x, label=table["y"].to_numpy(), categorical_feature=[2])
    return lgb.train(params, ds, num_boost_round=rounds)


FEATURES = ["a", "b", "colour"]


def test_lightgbm_round_trip_predicts_identically(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    booster = _booster(table, sig)
    package_id = save_model(store, booster, flavor="lightgbm", signature=sig, metadata={"k": 1})
    model = load_model(store, package_id)
    assert isinstance(model, LoadedModel)
    assert (model.flavor, model.signature, model.metadata) == ("lightgbm", sig, {"k": 1})
    expected = booster.predict(encode_inputs(table, sig))
    got = model.predict(table)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    # Columns by name in any order, numpy arrays instead of Arrow: same answer.
    cols = {name: table[name].to_numpy(zero_copy_only=False) for name in reversed(FEATURES)}
    np.testing.assert_array_equal(model.predict(cols), expected)
    assert model.predict_proba(table) is None


def test_package_ids_are_deterministic(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    first = save_model(store, _booster(table, sig), flavor="lightgbm", signature=sig, metadata={})
    retrained = save_model(
        store, _booster(table, sig), flavor="lightgbm", signature=sig, metadata={}
    )
    assert first == retrained
    reloaded = load_model(store, first)._predictor.booster  # type: ignore[attr-defined]
    assert save_model(store, reloaded, flavor="lightgbm", signature=sig, metadata={}) == first
    other_meta = save_model(
        store, reloaded, flavor="lightgbm", signature=sig, metadata={"run": "r1"}
    )
    other_model = save_model(
        store, _booster(table, sig, rounds=31), flavor="lightgbm", signature=sig, metadata={}
    )
    assert len({first, other_meta, other_model}) == 3


def test_manifest_is_canonical_json_naming_stored_files(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    booster = _booster(table, sig)
    package_id = save_model(store, booster, flavor="lightgbm", signature=sig, metadata={"z": [1]})
    raw = store.get_bytes(package_id)
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc["format_version"] == 1
    assert doc["flavor"] == "lightgbm"
    assert set(doc) == {
        "format_version",
        "flavor",
        "signature",
        "metadata",
        "requirements",
        "files",
    }
    assert doc["requirements"] == {"lightgbm": lgb.__version__}
    assert store.get_bytes(doc["files"]["model.txt"]).decode() == booster.model_to_string()
    manifest = read_manifest(store, package_id)
    assert manifest.signature == sig


def test_sklearn_round_trip_regression(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    x = encode_inputs(table, sig)
    x = np.nan_to_num(x)
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(x, table["y"].to_numpy())
    package_id = save_model(store, forest, flavor="sklearn", signature=sig, metadata={})
    model = load_model(store, package_id)
    np.testing.assert_array_equal(model.predict(table), forest.predict(x))
    assert model.flavor == "sklearn"


def test_classification_returns_labels_and_probabilities(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, ["a", "b"], target="label", task="classification")
    assert sig.classes == ("high", "low")
    x = encode_inputs(table, sig)
    y = (table["label"].to_numpy(zero_copy_only=False) == "low").astype(int)
    clf = LogisticRegression().fit(x, y)
    model = load_model(store, save_model(store, clf, flavor="sklearn", signature=sig))
    labels = model.predict(table)
    np.testing.assert_array_equal(labels, np.array(["high", "low"])[clf.predict(x)])
    proba = model.predict_proba(table)
    assert proba is not None
    np.testing.assert_allclose(proba, clf.predict_proba(x))

    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(x, label=y), 20
    )
    lgb_model = load_model(store, save_model(store, booster, flavor="lightgbm", signature=sig))
    p1 = booster.predict(x)
    lgb_proba = lgb_model.predict_proba(table)
    assert lgb_proba is not None
    np.testing.assert_allclose(lgb_proba, np.column_stack([1 - p1, p1]))
    np.testing.assert_array_equal(lgb_model.predict(table), np.where(p1 > 0.5, "low", "high"))


def test_missing_input_names_missing_and_expected(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    model = load_model(
        store, save_model(store, _booster(table, sig), flavor="lightgbm", signature=sig)
    )
    with pytest.raises(DataError) as err:
        model.predict({"a": [1.0]})
    assert "missing input(s) 'b', 'colour'" in str(err.value)
    assert "the model expects a, b, colour" in str(err.value)


def test_save_rejects_mismatches(store: ArtifactStore) -> None:
    table = _data()
    sig = infer_signature(table, FEATURES, target="y", task="regression")
    booster = _booster(table, sig)
    with pytest.raises(ArtifactError, match=r"lightgbm Booster or LGBMModel"):
        save_model(store, object(), flavor="lightgbm", signature=sig)
    narrow = infer_signature(table, ["a", "b"], target="y", task="regression")
    with pytest.raises(ArtifactError, match=r"takes 3 features but its signature lists 2"):
        save_model(store, booster, flavor="lightgbm", signature=narrow)
    with pytest.raises(ArtifactError, match=r"not plain JSON"):
        save_model(store, booster, flavor="lightgbm", signature=sig, metadata={"x": {1, 2}})
    with pytest.raises(ArtifactError, match=r"not plain JSON"):
        save_model(store, booster, flavor="lightgbm", signature=sig, metadata={"x": float("nan")})
    with pytest.raises(ArtifactError, match=r"predict"):
        save_model(store, 42, flavor="sklearn", signature=sig)


def test_loading_something_that_is_not_a_package(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match=r"not a model package"):
        load_model(store, store.put_bytes(b"hello"))
    with pytest.raises(ArtifactError, match=r"not a model package"):
        load_model(store, store.put_bytes(b'{"a": 1}'))
    future = json.dumps({"format_version": 99, "flavor": "lightgbm", "files": {}}).encode()
    with pytest.raises(ArtifactError, match=r"format version 99"):
        load_model(store, store.put_bytes(future))


def test_unknown_flavor_lists_known_ones(store: ArtifactStore) -> None:
    assert {"lightgbm", "sklearn"} <= set(known_flavors())
    with pytest.raises(
        ConfigError,
        match=r"unknown model flavor 'onnx'; known flavors: .*lightgbm",
    ):
        get_flavor("onnx")
    sig = ModelSignature(
        inputs=(TensorSpec(name="a", datatype="FP64"),),
        output=TensorSpec(name="y", datatype="FP64"),
        task="regression",
    )
    with pytest.raises(ConfigError, match=r"unknown model flavor"):
        save_model(store, object(), flavor="onnx", signature=sig)


class _LinearPredictor:
    def __init__(self, coef: list[float]) -> None:
        self.coef = np.asarray(coef)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef

    def predict_proba(self, x: np.ndarray) -> None:
        return None


class LinearFlavor:
    """A third-party flavor: coefficients as JSON."""

    def requirements(self) -> dict[str, str]:
        return {}

    def dump(self, model: Any, signature: ModelSignature) -> dict[str, bytes]:
        return {"coef.json": json.dumps(list(model)).encode()}

    def load(self, files: Mapping[str, bytes], signature: ModelSignature) -> _LinearPredictor:
        return _LinearPredictor(json.loads(files["coef.json"]))


def test_register_flavor_by_factory_and_by_path(store: ArtifactStore) -> None:
    sig = ModelSignature(
        inputs=(TensorSpec(name="a", datatype="FP64"), TensorSpec(name="b", datatype="FP64")),
        output=TensorSpec(name="y", datatype="FP64"),
        task="regression",
    )
    try:
        register_flavor("linear-test", LinearFlavor)
        register_flavor("linear-path-test", f"{__name__}:LinearFlavor")
        assert {"linear-test", "linear-path-test"} <= set(known_flavors())
        for name in ("linear-test", "linear-path-test"):
            package_id = save_model(store, [2.0, -1.0], flavor=name, signature=sig)
            model = load_model(store, package_id)
            np.testing.assert_array_equal(model.predict({"a": [1, 2], "b": [3, 1]}), [-1.0, 3.0])
    finally:
        for name in ("linear-test", "linear-path-test"):
            packaging._FACTORIES.pop(name, None)
            packaging._FLAVORS.pop(name, None)
    register_flavor("broken-test", "no.such.module:Flavor")
    try:
        with pytest.raises(ConfigError, match=r"cannot import 'no.such.module:Flavor'"):
            get_flavor("broken-test")
    finally:
        packaging._FACTORIES.pop("broken-test", None)
