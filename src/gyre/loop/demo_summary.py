"""The demo's summary: what was stored, what drifted, what was done, and whether it helped.

The before/after comparison is offline and fair: every model version predicts the same later
months (from the final features dataset), and only months after the newest training window
are compared, so no model is scored on rows it trained on.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.ingest.run import IngestReport
    from gyre.loop.pipeline import ReleaseReport
    from gyre.prepare.run import PrepareReport


def _month(value: Any) -> str:
    return str(value)[:7]


def evaluate_versions(ctx: StageContext, model: str) -> list[dict[str, Any]]:
    """Each version's error per month on the months after its training window."""
    import numpy as np

    from gyre.datasets.catalog import get_version
    from gyre.datasets.reader import read_table
    from gyre.datasets.windows import Split
    from gyre.models.packaging import load_model, read_manifest

    config = ctx.config.model(model)
    assert config.time_column, "the demo model needs a time column"
    data = get_version(ctx.store, ctx.artifacts, config.data)
    table = read_table(ctx.artifacts, data.manifest)
    months = np.asarray([_month(v) for v in table[config.time_column].to_pylist()])
    truth = np.asarray(table[config.target].to_numpy(zero_copy_only=False), dtype=np.float64)
    out = []
    for version in reversed(ctx.store.models.versions(model)):
        split = Split.model_validate(
            read_manifest(ctx.artifacts, version.package_id).metadata["split"]
        )
        assert split.end is not None
        after = months > _month(split.end)
        predictions = load_model(ctx.artifacts, version.package_id).predict(table)
        per_month = {}
        for month in sorted(set(months[after].tolist())):
            mask = months == month
            per_month[month] = round(float(np.mean(np.abs(truth[mask] - predictions[mask]))), 2)
        out.append(
            {
                "version": version.version,
                "aliases": list(version.aliases),
                "trained_on": f"{split.start}..{split.train_end}",
                "validated_on": f"after {split.train_end}..{split.end}",
                "validation": {k: round(v, 4) for k, v in version.metrics.items()},
                "mae_by_month_after": per_month,
                "run_id": version.run_id,
            }
        )
    return out


def _quarantine(ctx: StageContext, source: str) -> dict[str, Any]:
    from gyre.core.errors import NotFoundError
    from gyre.datasets.catalog import get_version
    from gyre.datasets.reader import read_table

    name = f"{source}.quarantine"
    try:
        version = get_version(ctx.store, ctx.artifacts, name)
    except NotFoundError:
        return {"rows": 0, "dataset": None, "by_rule": {}}
    table = read_table(ctx.artifacts, version.manifest)
    by_rule = dict(Counter(str(v) for v in table["rule"].to_pylist()))
    return {
        "rows": table.num_rows,
        "dataset": version.ref,
        "by_rule": by_rule,
        "example": table.slice(0, 1).to_pylist()[0] if table.num_rows else None,
    }


def summarise(
    ctx: StageContext,
    *,
    hour_csv: Path,
    ingested: list[IngestReport],
    prepared: list[PrepareReport],
    first: ReleaseReport,
    months: list[dict[str, Any]],
    evaluations: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    from gyre.loop.demo import ENDPOINT, MODEL, SOURCE

    store = ctx.store
    source_versions = store.datasets.versions(SOURCE)
    totals = Counter[str]()
    for version in source_versions:
        for key in ("rows_in", "accepted", "quarantined", "deduplicated"):
            totals[key] += int(version.stats.get(key, 0))
    month_rows = []
    actions = []
    for item in months:
        report, decision = item["report"], item["decision"]
        worst = max(report.drift, key=lambda d: d.get("score") or 0.0) if report.drift else None
        month_rows.append(
            {
                "month": report.window,
                "served_by": report.model_version,
                "predictions": report.predictions,
                "labelled": report.labelled,
                report.metric or "metric": None if report.value is None else round(report.value, 2),
                "ratio_to_validation": None if report.ratio is None else round(report.ratio, 3),
                "drifted_features": report.drifted_features,
                "worst_drift": None
                if worst is None
                else {"feature": worst["feature"], "score": round(worst["score"], 3)},
                "alerts": [a.kind for a in report.alerts],
                "action": decision.action,
            }
        )
        if decision.release is not None:
            release = decision.release
            actions.append(
                {
                    "window": report.window,
                    "action": decision.action,
                    "candidate": release.train.version.ref,
                    "candidate_metrics": release.validation.version.metrics,
                    "champion_on_same_holdout": release.validation.champion_metrics,
                    "promoted": release.promotion is not None,
                    "refusal": release.refusal,
                    "server_swap_seconds": None
                    if item["swap_seconds"] is None
                    else round(item["swap_seconds"], 2),
                }
            )
    champion = store.models.alias(MODEL, "champion")
    before_after = _before_after(evaluations, month_rows, champion.version if champion else None)
    checked, problem = store.audit.verify()
    graph = store.lineage.graph(f"endpoint:{ENDPOINT}", direction="upstream")
    events_file = ctx.paths.lineage_events
    return {
        "project": str(ctx.paths.root),
        "data": str(hour_csv),
        "seconds": round(seconds, 1),
        "ingest": dict(totals),
        "datasets": [
            {
                "name": d.name,
                "kind": d.kind,
                "latest": v.ref if v else None,
                "rows": v.row_count if v else 0,
            }
            for d, v in store.datasets.latest()
        ],
        "quarantine": _quarantine(ctx, SOURCE),
        "initial_release": first.as_dict(),
        "model_versions": evaluations,
        "months": month_rows,
        "alerts": [
            {
                "id": a.id,
                "kind": a.kind,
                "window": a.window,
                "message": a.message,
                "status": a.status,
                "action": a.action,
            }
            for a in store.operations.alerts()
        ],
        "actions": actions,
        "error_before_after": before_after,
        "champion": champion.ref if champion else None,
        "audit": {"events": checked, "verified": problem is None},
        "lineage": {
            "root": graph.root,
            "upstream_nodes": len(graph.nodes),
            "upstream_runs": len(graph.runs),
            "raw_files": sum(1 for n in graph.nodes if n.startswith("file:")),
        },
        "openlineage_events": sum(1 for _ in events_file.open()) if events_file.exists() else 0,
    }


def _before_after(
    evaluations: list[dict[str, Any]], months: list[dict[str, Any]], champion: int | None
) -> dict[str, Any]:
    """The loop against no loop: the error of the versions the loop actually served after the
    first retrain, next to the first model's error on the same months had it stayed in place."""
    if not evaluations:
        return {}
    by_version = {e["version"]: e["mae_by_month_after"] for e in evaluations}
    first = evaluations[0]
    retrained_at = next(
        (i for i, m in enumerate(months) if m["served_by"] != f"demand:{first['version']}"), None
    )
    if retrained_at is None:
        return {"retrained": False, "first_model": f"demand:{first['version']}"}
    served = []
    for month in months[retrained_at:]:
        version = int(str(month["served_by"]).rsplit(":", 1)[1])
        error = by_version.get(version, {}).get(month["month"])
        baseline = first["mae_by_month_after"].get(month["month"])
        if error is not None and baseline is not None:
            served.append((month["month"], error, baseline))
    if not served:
        return {"retrained": True, "months": []}

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 2)

    loop_mae = mean([e for _, e, _ in served])
    first_mae = mean([b for _, _, b in served])
    return {
        "retrained": True,
        "months": [m for m, _, _ in served],
        "first_model": f"demand:{first['version']}",
        "first_model_mae": first_mae,
        "served_by_loop_mae": loop_mae,
        "improvement": round(1 - loop_mae / first_mae, 3) if first_mae else None,
        "final_champion": f"demand:{champion}" if champion else None,
        "by_month": [
            {"month": m, "served_mae": round(e, 2), "first_model_mae": round(b, 2)}
            for m, e, b in served
        ],
    }
