"""The commented ``gyre.yaml`` that ``gyre init`` writes.

The template is the first documentation a user reads, so it explains every section in place.
It loads as it is (only ``project:`` is set); the example entries are commented out with a single
``# `` so an editor's toggle-comment turns them on, while prose lines start with ``## ``.
Uncommenting every ``# `` line gives a complete, valid project (a test keeps it that way).

    path = write_template(Path("."), "bikes")
"""

from __future__ import annotations

import re
from pathlib import Path

from gyre.core.errors import WorkspaceError

PROJECT_FILE = "gyre.yaml"

TEMPLATE = """\
## Gyre project file: the whole loop of one application, from raw data to retraining.
##   ingest (sources) -> prepare (datasets) -> train + validate (models)
##   -> deploy (endpoints) -> monitor (monitors) -> retrain
## Paths are relative to this file. Uncomment an example (remove the leading "# ") to use it;
## mistakes are reported with this file's line number and the key, e.g. models.demand.target.

project: {name}

## --- sources: raw data as it arrives ---------------------------------------------------
## Each batch is checked against a contract (column types, ranges, keys). Rows that break it
## are quarantined with their file, line and reason; the rest become a new dataset version.
sources:
#   rentals:
#     type: csv                          # source plugin
#     path: data/incoming/*.csv          # glob; each file is one batch
#     contract: contracts/rentals.yaml   # format: docs/ingest.md
#     quarantine_limit: 0.05             # refuse a batch when more than 5% of its rows break
#                                        # the contract (nothing is committed then)

## --- datasets: derived with SQL (DuckDB) ------------------------------------------------
## Every name in `inputs` (a source or another dataset) is a table in the query.
## Write an ORDER BY: row order is otherwise not guaranteed.
datasets:
#   features:
#     inputs: [rentals]
#     sql: sql/features.sql              # or inline: `query: SELECT ... FROM rentals`

## --- models: what to train, and what it must pass before it serves --------------------
models:
#   demand:
#     trainer: lightgbm                  # trainer plugin, e.g. lightgbm or sklearn
#     task: regression                   # regression | classification
#     data: features                     # a dataset or source
#     target: cnt
#     features: [hr, weekday, temp_c]
#     time_column: dteday                # optional: time-based holdout and retrain windows
#     validation: {{last_days: 30}}        # or {{fraction: 0.2}}: the last 20% of rows
#     params: {{n_estimators: 300, learning_rate: 0.05}}   # passed to the trainer as is
#     gates:                             # every gate must pass before the endpoint changes
#       - {{metric: mae, max: 90}}
#       - {{metric: mae, beat_champion: true}}
#     approval: auto                     # auto | required (waits for `gyre approve`)

## --- endpoints: where models serve ------------------------------------------------------
endpoints:
#   demand:
#     model: demand
#     alias: champion                    # the model version holding this alias serves

## --- monitors: watch served traffic, act on alerts --------------------------------------
monitors:
#   demand:
#     endpoint: demand
#     window: month                      # day | week | month
#     drift: {{method: psi, threshold: 0.2, features: null}}    # null: all model features
#     performance: {{metric: mae, max_ratio: 1.3}}              # needs labels (`gyre feedback`)
#     on_alert: retrain                  # retrain | none
#     retrain: {{window_days: 365, cooldown_windows: 1}}
"""

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def render_template(name: str) -> str:
    """The template text for a project called ``name``."""
    if not _NAME.match(name):
        raise WorkspaceError(
            f"invalid project name '{name}'",
            hint="start with a letter, then letters, digits, '_' or '-'",
        )
    return TEMPLATE.format(name=name)


def write_template(dir: Path, name: str) -> Path:
    """Write ``gyre.yaml`` into ``dir`` (created if needed); never overwrites one."""
    target = dir / PROJECT_FILE
    text = render_template(name)
    dir.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise WorkspaceError(
            f"{target} already exists; not overwriting it",
            hint="edit it, or remove it first to start over",
        ) from None
    return target
