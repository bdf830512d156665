"""Trainers on real data (Capital Bikeshare 2011) and their loud failures on bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from gyre.core.artifacts import ArtifactStore
from gyre.core.errors import TrainError
from gyre.models import load_model, save_model
from gyre.train import (
    TRAINERS,
    FitResult,
    LightGBMTrainer,
    evaluate,
    get_trainer,
    known_trainers,
    register_trainer,
)

FEATURES = [
    "season",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
]


@pytest.fixture(scope="module")
def bikes(shared_data: Path) -> tuple[pa.Table, pa.Table]:
    """2011 January-June; days 1-24 of each month train, days 25 onwards are held out.

    Holding out whole days (not random hours) keeps neighbouring hours of one day from
    leaking between the sets.
    """
    table = pv.read_csv(shared_data / "drift" / "bike-sharing" / "hour.csv")
    first_half = table.filter(pc.and_(pc.equal(table["yr"], 0), pc.less_equal(table["mnth"], 6)))
    day = pc.day(first_half["dteday"])
    return (
        first_half.filter(pc.less_equal(day, 24)),
        first_half.filter(pc.greater(day, 24)),
    )


def _mae_of_mean(train: pa.Table, test: pa.Table) -> float:
    mean = float(np.mean(train["cnt"].to_numpy()))
    return float(np.mean(np.abs(test["cnt"].to_numpy() - mean)))


def test_lightgbm_beats_the_mean_predictor_on_held_out_days(
    bikes: tuple[pa.Table, pa.Table], tmp_path: Path
) -> None:
    train, test = bikes
    assert (train.num_rows, test.num_rows) == (3396, 854)
    fit = get_trainer("lightgbm").fit(
        train, features=FEATURES, target="cnt", task="regression", params={}
    )
    assert isinstance(fit, FitResult)
    assert fit.flavor == "lightgbm"
    assert fit.params_used["num_iterations"] == 300
    assert fit.params_used["learning_rate"] == 0.05
    assert fit.feature_importance["hr"] == max(fit.feature_importance.values())
    store = ArtifactStore.from_url(str(tmp_path / "objects"))
    model = load_model(
        store, save_model(store, fit.model, flavor=fit.flavor, signature=fit.signature)
    )
    metrics = evaluate(model.predict, test, FEATURES, "cnt", "regression")
    baseline = _mae_of_mean(train, test)
    print(f"bike-sharing 2011 H1 held-out MAE: lightgbm {metrics['mae']:.2f}, mean {baseline:.2f}")
    assert metrics["mae"] < 0.4 * baseline
    assert metrics["r2"] > 0.8
    # The same numbers as scikit-learn's reference implementations.
    y_true = test["cnt"].to_numpy().astype(float)
    y_pred = model.predict(test)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred))
    assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y_true, y_pred)))
    assert metrics["r2"] == pytest.approx(r2_score(y_true, y_pred))


def test_lightgbm_training_is_deterministic(bikes: tuple[pa.Table, pa.Table]) -> None:
    train, _ = bikes
    params = {"n_estimators": 40}
    fits = [
        get_trainer("lightgbm").fit(
            train, features=FEATURES, target="cnt", task="regression", params=params
        )
        for _ in range(2)
    ]
    assert fits[0].model.model_to_string() == fits[1].model.model_to_string()
    assert fits[0].params_used["num_iterations"] == 40  # the alias was made canonical


def test_sklearn_trainer_on_real_data(bikes: tuple[pa.Table, pa.Table]) -> None:
    train, test = bikes
    fit = get_trainer("sklearn").fit(
        train,
        features=FEATURES,
        target="cnt",
        task="regression",
        params={"estimator": "sklearn.ensemble.RandomForestRegressor", "n_estimators": 30},
    )
    assert fit.flavor == "sklearn"
    assert fit.params_used["estimator"] == "sklearn.ensemble.RandomForestRegressor"
    assert fit.params_used["n_estimators"] == 30
    assert fit.params_used["random_state"] == 42
    assert set(fit.feature_importance) == set(FEATURES)
    from gyre.models.signature import encode_inputs

    pred = fit.model.predict(encode_inputs(test, fit.signature))
    mae = float(np.mean(np.abs(pred - test["cnt"].to_numpy())))
    assert mae < 0.5 * _mae_of_mean(train, test)


def _toy(n: int = 200) -> pa.Table:
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "blue"], size=n)
    y = 2 * x + np.where(colour == "red", 5.0, 0.0)
    return pa.table({"x": x, "colour": colour, "y": y, "cls": np.where(y > 2, "up", "down")})


def test_string_features_are_categorical_and_mapped_the_same_at_prediction(
    tmp_path: Path,
) -> None:
    table = _toy()
    fit = get_trainer("lightgbm").fit(
        table, features=["x", "colour"], target="y", task="regression", params={"n_estimators": 50}
    )
    assert fit.params_used["categorical_feature"] == ["colour"]
    assert fit.signature.inputs[1].categories == ("blue", "red")
    store = ArtifactStore.from_url(str(tmp_path / "objects"))
    model = load_model(
        store, save_model(store, fit.model, flavor="lightgbm", signature=fit.signature)
    )
    red, blue = model.predict({"x": [0.0, 0.0], "colour": ["red", "blue"]})
    assert red - blue == pytest.approx(5.0, abs=1.0)


@pytest.mark.parametrize("trainer", ["lightgbm", "sklearn"])
def test_classification_predicts_labels(trainer: str, tmp_path: Path) -> None:
    table = _toy()
    fit = get_trainer(trainer).fit(
        table, features=["x", "colour"], target="cls", task="classification", params={}
    )
    assert fit.signature.classes == ("down", "up")
    store = ArtifactStore.from_url(str(tmp_path / "objects"))
    model = load_model(
        store, save_model(store, fit.model, flavor=fit.flavor, signature=fit.signature)
    )
    metrics = evaluate(
        model.predict,
        table,
        ["x", "colour"],
        "cls",
        "classification",
        predict_proba=model.predict_proba,
        classes=fit.signature.classes,
    )
    assert metrics["accuracy"] > 0.95
    assert metrics["roc_auc"] > 0.95


def test_multiclass_lightgbm() -> None:
    table = _toy()
    y = table["y"].to_numpy()
    table = table.append_column("band", pa.array(np.digitize(y, [-1.0, 3.0]).astype(np.int64)))
    fit = get_trainer("lightgbm").fit(
        table, features=["x", "colour"], target="band", task="classification", params={}
    )
    assert fit.params_used["objective"] == "multiclass"
    assert fit.params_used["num_class"] == 3
    assert fit.signature.classes == (0, 1, 2)


def test_unknown_lightgbm_params_are_listed() -> None:
    with pytest.raises(TrainError, match=r"unknown LightGBM parameter\(s\): bogus, leaves"):
        get_trainer("lightgbm").fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"leaves": 3, "bogus": 1, "num_leaves": 7},
        )


def test_lightgbm_param_given_twice_through_aliases() -> None:
    with pytest.raises(TrainError, match=r"'num_iterations' given twice"):
        LightGBMTrainer().resolve_params(
            {"n_estimators": 3, "num_boost_round": 4}, task="regression", n_classes=0
        )


def test_lightgbm_bad_param_value_is_a_train_error() -> None:
    with pytest.raises(TrainError, match=r"LightGBM failed"):
        get_trainer("lightgbm").fit(
            _toy(), features=["x"], target="y", task="regression", params={"objective": "nope"}
        )


def test_sklearn_param_errors() -> None:
    trainer = get_trainer("sklearn")
    with pytest.raises(TrainError, match=r"unknown parameter\(s\) for .*Ridge: depth"):
        trainer.fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"estimator": "sklearn.linear_model.Ridge", "depth": 3},
        )
    with pytest.raises(TrainError, match=r"has no attribute 'Nope'"):
        trainer.fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"estimator": "sklearn.linear_model.Nope"},
        )
    with pytest.raises(TrainError, match=r"cannot import"):
        trainer.fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"estimator": "no_such_pkg.Model"},
        )
    with pytest.raises(TrainError, match=r"not an estimator class"):
        trainer.fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"estimator": "math.sqrt"},
        )


@pytest.mark.parametrize("trainer", ["lightgbm", "sklearn"])
def test_bad_training_data_fails_loudly(trainer: str) -> None:
    fit = get_trainer(trainer).fit
    toy = _toy()
    with pytest.raises(TrainError, match=r"'nope'.*not in the training data; it has: x, colour"):
        fit(toy, features=["x", "nope"], target="y", task="regression", params={})
    with pytest.raises(TrainError, match=r"training set is empty"):
        fit(toy.slice(0, 0), features=["x"], target="y", task="regression", params={})
    nan_target = toy.set_column(2, "y", pa.array([1.0, np.nan, *toy["y"].to_numpy()[2:]]))
    with pytest.raises(TrainError, match=r"1 missing or NaN value\(s\) \(first at row 1\)"):
        fit(nan_target, features=["x"], target="y", task="regression", params={})
    null_target = toy.set_column(2, "y", pa.array([None, *toy["y"].to_numpy()[1:]]))
    with pytest.raises(TrainError, match=r"first at row 0"):
        fit(null_target, features=["x"], target="y", task="regression", params={})
    stamps = toy.append_column("when", pa.array([dt.datetime(2024, 1, 1)] * toy.num_rows))
    with pytest.raises(TrainError, match=r"'when' has type timestamp"):
        fit(stamps, features=["x", "when"], target="y", task="regression", params={})
    with pytest.raises(TrainError, match=r"regression target 'cls'"):
        fit(toy, features=["x"], target="cls", task="regression", params={})
    one_class = toy.set_column(3, "cls", pa.array(["up"] * toy.num_rows))
    with pytest.raises(TrainError, match=r"at least two are needed"):
        fit(one_class, features=["x"], target="cls", task="classification", params={})
    with pytest.raises(TrainError, match=r"also listed as a feature"):
        fit(toy, features=["x", "y"], target="y", task="regression", params={})
    with pytest.raises(TrainError, match=r"no features"):
        fit(toy, features=[], target="y", task="regression", params={})


def test_trainer_registry() -> None:
    assert {"lightgbm", "sklearn"} <= set(known_trainers())
    with pytest.raises(TrainError, match=r"unknown trainer 'xgb'; known trainers: lightgbm"):
        get_trainer("xgb")

    class MeanTrainer:
        def fit(self, train, *, features, target, task, params):  # type: ignore[no-untyped-def]
            raise TrainError("mean trainer reached")

    try:
        register_trainer("mean-test", MeanTrainer)
        register_trainer("lgb-path-test", "gyre.train.trainers:LightGBMTrainer")
        assert "mean-test" in known_trainers()
        with pytest.raises(TrainError, match=r"mean trainer reached"):
            get_trainer("mean-test").fit(
                _toy(), features=["x"], target="y", task="regression", params={}
            )
        assert isinstance(get_trainer("lgb-path-test"), LightGBMTrainer)
    finally:
        TRAINERS.pop("mean-test", None)
        TRAINERS.pop("lgb-path-test", None)


def test_lightgbm_categorical_feature_by_name() -> None:
    fit = get_trainer("lightgbm").fit(
        _toy(),
        features=["x", "colour"],
        target="y",
        task="regression",
        params={"categorical_feature": ["x"], "n_estimators": 5},
    )
    assert fit.params_used["categorical_feature"] == ["x", "colour"]
    assert isinstance(fit.model, lgb.Booster)
    with pytest.raises(TrainError, match=r"categorical_feature 'z' is not a feature"):
        get_trainer("lightgbm").fit(
            _toy(),
            features=["x"],
            target="y",
            task="regression",
            params={"categorical_feature": ["z"]},
        )
