"""PII detection for a file read in blocks: each block keeps an evenly spread sample of its text
and integer columns, and detection looks at the samples of every block once the file is read,
so a column is judged over the whole file, as when it is read whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gyre.ingest.contract import Contract


# Each block keeps one value in this many of each text or integer column (at least 64 values),
# evenly spread: 19,500 per column for 5M rows, plenty for a 1,000-value detection sample.
PII_DENSITY = 256


def block_sample(column: pa.ChunkedArray) -> pa.Array:
    """What one block keeps of ``column`` for detection (see :data:`PII_DENSITY`): its values
    before the ``pii:`` policy."""
    from gyre.ingest.pii import spread_sample

    present = len(column) - column.null_count
    return spread_sample(column, max(64, -(-present // PII_DENSITY)))


def detect_in_samples(samples: Mapping[str, list[pa.Array]], contract: Contract) -> dict[str, str]:
    """PII found over the whole file from every block's ``samples`` of each column (see
    :func:`block_sample`): detection's sample is drawn from all of them, so a column whose
    e-mails start after the first block is still found, as when the file is read whole. The
    rows sampled differ from a whole read's, so a column right at the threshold (80% of values)
    may be judged either way."""
    from gyre.ingest.pii import detect_pii

    tags: dict[str, str] = {}
    for spec in contract.columns:
        kept = samples.get(spec.name)
        if not kept:
            continue
        values = pa.chunked_array(kept, type=pa.string())
        if spec.type == "int":  # judged as integers, as a whole read judges the column
            values = values.cast(pa.int64())
        for finding in detect_pii(pa.table({spec.name: values})):
            tags[finding.column] = finding.kind
    return tags
