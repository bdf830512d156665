"""Where each accepted value of a text column held to ``allowed`` values stands among them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class AllowedCodes:
    """A text column held to its ``allowed`` values: for each accepted row the position of its
    value in ``values`` (null for null), found by the very lookup that checked it. Counting
    these gives the column's value counts without hashing every value a second time."""

    codes: pa.Array  # int32, one per accepted row
    values: pa.Array  # the allowed values, in the contract's order

    def value_counts(self) -> pa.StructArray:
        """What ``pc.value_counts`` gives for the accepted values, nulls left out (values in the
        contract's order, not in order of appearance)."""
        present = pc.drop_null(self.codes).to_numpy()
        counts = np.bincount(present, minlength=len(self.values))
        seen = np.flatnonzero(counts)
        return pa.StructArray.from_arrays(
            [self.values.take(pa.array(seen)), pa.array(counts[seen], pa.int64())],
            names=["values", "counts"],
        )
