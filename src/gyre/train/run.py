"""Training a configured model into a registered model version.

Reads the latest version of the model's dataset (optionally only its most recent
``window_days``), splits off a holdout, fits the trainer, scores the holdout, packages the model
with its signature and a drift reference profile of the training rows, and registers the
version. The run records params, metrics, code hash, environment and data versions; lineage
links the dataset version to the model version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gyre.core.errors import TrainError
from gyre.core.lineage import dataset_node, model_node
from gyre.core.runs import code_hash, track_run

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.core.store.records import ModelVersionRecord


@dataclass(frozen=True)
class TrainReport:
    version: ModelVersionRecord
    metrics: dict[str, float]
    split: dict[str, Any]
    train_rows: int
    validation_rows: int
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.ref,
            "metrics": self.metrics,
            "split": self.split,
            "train_rows": self.train_rows,
            "validation_rows": self.validation_rows,
            "run_id": self.run_id,
        }


def train_model(ctx: StageContext, name: str, *, window_days: int | None = None) -> TrainReport:
    from gyre.datasets.catalog import get_version
    from gyre.datasets.reader import read_table
    from gyre.datasets.reference import ReferenceProfile
    from gyre.datasets.windows import last_days, split_table
    from gyre.models.metrics import evaluate
    from gyre.models.packaging import load_model, save_model
    from gyre.train.trainers import get_trainer

    config = ctx.config.model(name)
    data = get_version(ctx.store, ctx.artifacts, config.data)
    trainer = get_trainer(config.trainer)
    params = {
        "trainer": config.trainer,
        "task": config.task,
        "data": data.ref,
        "features": list(config.features),
        "target": config.target,
        "window_days": window_days,
        "validation": config.validation.model_dump(exclude_none=True),
        "hyperparameters": dict(config.params),
    }
    assert ctx.config.file is not None
    with track_run(
        ctx,
        kind="train",
        job=name,
        params=params,
        code=code_hash([ctx.config.file], extra=repr(sorted(params.items()))),
    ) as run:
        run.input(
            dataset_node(data.record.dataset, data.record.version), version=data.record.content_id
        )
        table = read_table(ctx.artifacts, data.manifest)
        if window_days is not None:
            if not config.time_column:
                raise TrainError(
                    f"model '{name}' has no time_column, so a {window_days}-day window cannot "
                    "be cut",
                    hint=f"set models.{name}.time_column in gyre.yaml, or drop the window",
                )
            table = last_days(table, config.time_column, window_days)
        train, valid, split = split_table(
            table,
            data_ref=data.ref,
            time_column=config.time_column,
            validation_days=config.validation.last_days,
            validation_fraction=config.validation.fraction,
        )
        fit = trainer.fit(
            train,
            features=list(config.features),
            target=config.target,
            task=config.task,
            params=dict(config.params),
        )
        reference = ReferenceProfile.from_table(train, list(config.features))
        reference_id = ctx.artifacts.put_bytes(reference.to_json().encode())
        package_id = save_model(
            ctx.artifacts,
            fit.model,
            flavor=fit.flavor,
            signature=fit.signature,
            metadata={
                "model": name,
                "split": split.model_dump(),
                "reference_profile": reference_id,
                "params": fit.params_used,
                "feature_importance": fit.feature_importance,
                "train_run": run.id,
            },
        )
        loaded = load_model(ctx.artifacts, package_id)
        metrics = evaluate(
            loaded.predict,
            valid,
            list(config.features),
            config.target,
            config.task,
            predict_proba=loaded.predict_proba if config.task == "classification" else None,
            classes=loaded.signature.classes,
        )
        version = ctx.store.models.register(
            name,
            package_id=package_id,
            flavor=fit.flavor,
            signature=fit.signature.model_dump(mode="json"),
            metrics=metrics,
            run_id=run.id,
        )
        run.output(model_node(name, version.version), version=package_id)
        run.metrics.update(metrics)
        run.metrics.update(train_rows=train.num_rows, validation_rows=valid.num_rows)
    return TrainReport(version, metrics, split.model_dump(), train.num_rows, valid.num_rows, run.id)
