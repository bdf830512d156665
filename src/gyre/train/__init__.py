"""The train stage: trainers registered by name, and the metrics that score their models.

Model libraries are imported only inside ``Trainer.fit``, so importing this package is cheap.
"""

from gyre.models.metrics import classification_metrics, evaluate, regression_metrics, roc_auc
from gyre.train.trainers import (
    TRAINERS,
    FitResult,
    LightGBMTrainer,
    SklearnTrainer,
    Trainer,
    TrainingData,
    get_trainer,
    known_trainers,
    prepare_training_data,
    register_trainer,
)

__all__ = [
    "TRAINERS",
    "FitResult",
    "LightGBMTrainer",
    "SklearnTrainer",
    "Trainer",
    "TrainingData",
    "classification_metrics",
    "evaluate",
    "get_trainer",
    "known_trainers",
    "prepare_training_data",
    "register_trainer",
    "regression_metrics",
    "roc_auc",
]
