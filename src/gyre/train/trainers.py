"""Trainers, registered by name: turn a training table into a fitted model and its signature.

    trainer = get_trainer("lightgbm")
    fit = trainer.fit(table, features=["hr", "temp"], target="cnt", task="regression", params={})
    package_id = save_model(store, fit.model, flavor=fit.flavor, signature=fit.signature,
                            metadata={"params": fit.params_used})

Both built-in trainers ("lightgbm", "sklearn") encode features through
:func:`gyre.models.encode_inputs`, the same code the loaded package runs at prediction time, so
string (categorical) features map to the same codes in training and in serving; the mapping lives
in the signature. Classification targets are trained as indices into ``signature.classes``.
Trainers fail loudly with :class:`TrainError` on missing columns, unusable column types, an empty
training set, missing target values and parameter names the library does not know (LightGBM
would otherwise only warn and ignore them).

Third parties add trainers with :func:`register_trainer` (a factory or a ``module:attr`` path).
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from gyre.core.errors import DataError, TrainError
from gyre.models.signature import (
    ModelSignature,
    Task,
    encode_inputs,
    encode_target,
    infer_signature,
)

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class FitResult:
    """A fitted model, the flavor that packages it, and what was used to fit it."""

    model: Any
    flavor: str
    params_used: dict[str, Any]
    feature_importance: dict[str, float]
    signature: ModelSignature
    n_rows: int = 0


class Trainer(Protocol):
    """Fits one kind of model. ``params`` come from gyre.yaml, unchecked until here."""

    def fit(
        self,
        train: pa.Table,
        *,
        features: Sequence[str],
        target: str,
        task: Task,
        params: Mapping[str, Any],
    ) -> FitResult: ...


@dataclass(frozen=True)
class TrainingData:
    """Features encoded as a float64 matrix, target as floats or class indices."""

    x: npt.NDArray[np.float64]
    y: npt.NDArray[Any]
    signature: ModelSignature


def prepare_training_data(
    train: pa.Table, *, features: Sequence[str], target: str, task: Task
) -> TrainingData:
    """Check a training table and encode it; every problem is a :class:`TrainError`."""
    import pyarrow.compute as pc

    features = list(features)
    if task not in ("regression", "classification"):
        raise TrainError(f"unknown task '{task}'; use 'regression' or 'classification'")
    if not features:
        raise TrainError("no features given", hint="list the feature columns in gyre.yaml")
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise TrainError(f"feature(s) listed twice: {', '.join(repeated)}")
    if target in features:
        raise TrainError(f"the target '{target}' is also listed as a feature")
    missing = [c for c in [*features, target] if c not in train.column_names]
    if missing:
        raise TrainError(
            f"column(s) {', '.join(map(repr, missing))} not in the training data; it has: "
            f"{', '.join(train.column_names)}",
            hint="fix the feature/target names in gyre.yaml or add the columns in prepare",
        )
    if train.num_rows == 0:
        raise TrainError("the training set is empty (0 rows)", hint="check the data split")
    target_col = train.column(target)
    bad = pc.is_null(target_col, nan_is_null=True)
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        first = pc.index(bad, True).as_py()
        raise TrainError(
            f"target '{target}' has {n_bad} missing or NaN value(s) (first at row {first})",
            hint="drop or impute rows without a label in the prepare step",
        )
    try:
        signature = infer_signature(train, features, target=target, task=task)
        x = encode_inputs(train, signature)
        if task == "classification":
            if len(signature.classes or ()) < 2:
                raise TrainError(
                    f"classification target '{target}' has only the classes "
                    f"{list(signature.classes or ())}; at least two are needed"
                )
            y: npt.NDArray[Any] = encode_target(target_col, signature)
        else:
            y = np.asarray(target_col.to_numpy(), dtype=np.float64)
            if not np.all(np.isfinite(y)):
                raise TrainError(f"target '{target}' has infinite values")
    except DataError as exc:
        raise TrainError(exc.message, hint=exc.hint) from exc
    return TrainingData(x=x, y=y, signature=signature)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return repr(value)


def _lightgbm_aliases() -> dict[str, str]:
    """Every LightGBM parameter name and alias, mapped to its canonical name."""
    try:
        from lightgbm.basic import _ConfigAliases

        table: dict[str, list[str]] = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # private API moved: fall back to the sklearn view
        import lightgbm as lgb

        table = {name: [name] for name in lgb.LGBMRegressor().get_params()}
        table.update({name: [name] for name in LightGBMTrainer.REGRESSION_DEFAULTS})
    aliases = {}
    for canonical, names in table.items():
        aliases[canonical] = canonical
        for alias in names:
            aliases.setdefault(alias, canonical)
    return aliases


class LightGBMTrainer:
    """Gradient-boosted trees with ``lightgbm.train``; packages with the "lightgbm" flavor.

    ``params`` take any LightGBM parameter or alias (``n_estimators``, ``random_state``...);
    ``categorical_feature`` may list feature *names*. String features are always categorical.
    """

    flavor = "lightgbm"
    REGRESSION_DEFAULTS: Mapping[str, Any] = {
        "objective": "regression",
        "num_iterations": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "seed": 42,
        # deterministic + a fixed thread count + col-wise histograms make reruns bit-identical.
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }

    def resolve_params(
        self, params: Mapping[str, Any], *, task: Task, n_classes: int
    ) -> dict[str, Any]:
        """Defaults overlaid with ``params``, every name made canonical; unknown names fail."""
        aliases = _lightgbm_aliases()
        unknown = sorted(name for name in params if name not in aliases)
        if unknown:
            raise TrainError(
                f"unknown LightGBM parameter(s): {', '.join(unknown)}",
                hint="see https://lightgbm.readthedocs.io/en/latest/Parameters.html for names "
                "and aliases",
            )
        given: dict[str, tuple[str, Any]] = {}
        for name, value in params.items():
            canonical = aliases[name]
            if canonical in given:
                raise TrainError(
                    f"LightGBM parameter '{canonical}' given twice, as '{given[canonical][0]}' "
                    f"and '{name}'"
                )
            given[canonical] = (name, value)
        resolved = dict(self.REGRESSION_DEFAULTS)
        if task == "classification":
            resolved["objective"] = "binary" if n_classes == 2 else "multiclass"
            if n_classes > 2:
                resolved["num_class"] = n_classes
        resolved.update({canonical: value for canonical, (_, value) in given.items()})
        return resolved

    def fit(
        self,
        train: pa.Table,
        *,
        features: Sequence[str],
        target: str,
        task: Task,
        params: Mapping[str, Any],
    ) -> FitResult:
        import lightgbm as lgb

        data = prepare_training_data(train, features=features, target=target, task=task)
        sig = data.signature
        resolved = self.resolve_params(params, task=task, n_classes=len(sig.classes or ()))
        categorical = [i for i, spec in enumerate(sig.inputs) if spec.datatype == "BYTES"]
        for name in _as_name_list(resolved.pop("categorical_feature", [])):
            if name not in sig.input_names:
                raise TrainError(
                    f"categorical_feature '{name}' is not a feature; features: "
                    f"{', '.join(sig.input_names)}"
                )
            categorical.append(sig.input_names.index(name))
        rounds = int(resolved.pop("num_iterations"))
        try:
            dataset = lgb.Dataset(
                data.x,
                label=data.y,
                feature_name=sig.input_names,
                categorical_feature=sorted(set(categorical)),
                free_raw_data=True,
            )
            booster = lgb.train(resolved, dataset, num_boost_round=rounds)
        except lgb.basic.LightGBMError as exc:
            raise TrainError(f"LightGBM failed: {exc}", hint="check the trainer params") from None
        gains = booster.feature_importance(importance_type="gain")
        importance = {n: float(g) for n, g in zip(sig.input_names, gains, strict=True)}
        used = {"num_iterations": rounds, **resolved}
        if categorical:
            used["categorical_feature"] = [sig.input_names[i] for i in sorted(set(categorical))]
        return FitResult(
            model=booster,
            flavor=self.flavor,
            params_used=_json_safe(used),
            feature_importance=importance,
            signature=sig,
            n_rows=train.num_rows,
        )


def _as_name_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    raise TrainError(f"categorical_feature must be a list of feature names, got {value!r}")


def resolve_dotted(path: str) -> Any:
    """Import ``package.module.Attr`` (or ``package.module:Attr``)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise TrainError(
            f"'{path}' is not a dotted path",
            hint="write the full path, e.g. sklearn.ensemble.RandomForestRegressor",
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        raise TrainError(f"cannot import '{module_name}' for '{path}': {exc}") from None
    except AttributeError:
        raise TrainError(f"'{module_name}' has no attribute '{attr}' (from '{path}')") from None
    return obj


class SklearnTrainer:
    """Any scikit-learn style estimator, chosen by dotted path; packages as "sklearn" (pickle).

    ``params: {estimator: sklearn.ensemble.RandomForestRegressor, n_estimators: 200}``; the
    other keys are the estimator's constructor arguments. ``random_state`` defaults to 42.
    """

    flavor = "sklearn"
    DEFAULT_ESTIMATORS: Mapping[str, str] = {
        "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
        "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    }

    def build(self, params: Mapping[str, Any], *, task: Task) -> tuple[Any, str]:
        kwargs = dict(params)
        path = str(kwargs.pop("estimator", self.DEFAULT_ESTIMATORS[task]))
        cls = resolve_dotted(path)
        if not inspect.isclass(cls) or not hasattr(cls, "fit") or not hasattr(cls, "predict"):
            raise TrainError(f"'{path}' is not an estimator class with fit() and predict()")
        accepted = inspect.signature(cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        if not takes_any:
            unknown = sorted(set(kwargs) - set(accepted))
            if unknown:
                raise TrainError(
                    f"unknown parameter(s) for {path}: {', '.join(unknown)}; it accepts: "
                    f"{', '.join(accepted)}"
                )
        if "random_state" in accepted and "random_state" not in kwargs:
            kwargs["random_state"] = 42
        try:
            return cls(**kwargs), path
        except (TypeError, ValueError) as exc:
            raise TrainError(f"cannot create {path}: {exc}") from None

    def fit(
        self,
        train: pa.Table,
        *,
        features: Sequence[str],
        target: str,
        task: Task,
        params: Mapping[str, Any],
    ) -> FitResult:
        estimator, path = self.build(params, task=task)
        data = prepare_training_data(train, features=features, target=target, task=task)
        try:
            estimator.fit(data.x, data.y)
        except (ValueError, TypeError) as exc:
            raise TrainError(
                f"{path} failed to fit: {exc}",
                hint="some estimators reject missing values (NaN); impute them in prepare "
                "or use HistGradientBoosting*",
            ) from None
        names = data.signature.input_names
        importance: dict[str, float] = {}
        raw = getattr(estimator, "feature_importances_", None)
        if raw is None and hasattr(estimator, "coef_"):
            coef = np.abs(np.asarray(estimator.coef_, dtype=np.float64))
            raw = coef.reshape(-1, len(names)).mean(axis=0)
        if raw is not None:
            importance = {n: float(v) for n, v in zip(names, np.asarray(raw), strict=True)}
        return FitResult(
            model=estimator,
            flavor=self.flavor,
            params_used=_json_safe({"estimator": path, **estimator.get_params(deep=False)}),
            feature_importance=importance,
            signature=data.signature,
            n_rows=train.num_rows,
        )


TrainerFactory = Callable[[], Trainer]
# Factories keep registration free: lightgbm/sklearn are imported only inside fit().
TRAINERS: dict[str, TrainerFactory | str] = {
    "lightgbm": LightGBMTrainer,
    "sklearn": SklearnTrainer,
}


def register_trainer(name: str, factory: TrainerFactory | str) -> None:
    """Make a trainer available as ``name``: a zero-argument factory or ``module:attr`` path."""
    TRAINERS[name] = factory


def known_trainers() -> list[str]:
    return sorted(TRAINERS)


def get_trainer(name: str) -> Trainer:
    """A fresh trainer registered as ``name`` (a :class:`TrainError` listing known names)."""
    factory = TRAINERS.get(name)
    if factory is None:
        raise TrainError(
            f"unknown trainer '{name}'; known trainers: {', '.join(known_trainers())}",
            hint="register custom trainers with gyre.train.register_trainer(name, factory)",
        )
    if isinstance(factory, str):
        factory = resolve_dotted(factory)
    trainer: Trainer = factory()
    return trainer
