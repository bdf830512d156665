"""The validate stage: gates that a candidate model's metrics must pass before deployment."""

from gyre.validate.gates import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    GateReport,
    GateResult,
    GateSpec,
    evaluate_gates,
    is_higher_better,
    parse_gates,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "GateReport",
    "GateResult",
    "GateSpec",
    "evaluate_gates",
    "is_higher_better",
    "parse_gates",
]
