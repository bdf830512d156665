"""Printing the demo's summary for people (``--json`` prints the same data as JSON)."""

from __future__ import annotations

from typing import Any

from gyre.cli.output import console, table


def show_summary(s: dict[str, Any]) -> None:
    ingest = s["ingest"]
    console.rule("[bold]Gyre demo: summary")
    console.print(
        f"project {s['project']}  ({s['seconds']}s)\n"
        f"ingested {ingest.get('rows_in', 0)} rows = {ingest.get('accepted', 0)} accepted + "
        f"{ingest.get('quarantined', 0)} quarantined + {ingest.get('deduplicated', 0)} "
        "deduplicated"
    )
    q = s["quarantine"]
    if q["rows"]:
        rules = ", ".join(f"{k}: {v}" for k, v in q["by_rule"].items())
        console.print(f"quarantine {q['dataset']}: {q['rows']} rows ({rules})")
    table(
        "Dataset versions",
        ["dataset", "kind", "latest", "rows"],
        [(d["name"], d["kind"], d["latest"], d["rows"]) for d in s["datasets"]],
    )
    table(
        "Months served (drift: PSI per feature against the serving model's training data)",
        [
            "month",
            "served by",
            "predictions",
            "MAE",
            "x validation",
            "drifted",
            "worst drift",
            "alerts",
            "action",
        ],
        [
            (
                m["month"],
                m["served_by"],
                m["predictions"],
                m.get("mae"),
                m["ratio_to_validation"],
                len(m["drifted_features"]),
                f"{m['worst_drift']['feature']} {m['worst_drift']['score']:.2f}"
                if m["worst_drift"]
                else "-",
                ", ".join(m["alerts"]) or "-",
                m["action"],
            )
            for m in s["months"]
        ],
    )
    table(
        "Model versions: MAE on the months after their training window",
        ["version", "aliases", "trained on", "validation MAE", "mean MAE after", "months"],
        [
            (
                f"demand:{v['version']}",
                ",".join(v["aliases"]),
                v["trained_on"],
                v["validation"].get("mae"),
                round(sum(v["mae_by_month_after"].values()) / len(v["mae_by_month_after"]), 2)
                if v["mae_by_month_after"]
                else "-",
                len(v["mae_by_month_after"]),
            )
            for v in s["model_versions"]
        ],
    )
    for action in s["actions"]:
        console.print(
            f"[cyan]{action['window']}[/]: {action['action']} -> {action['candidate']} "
            f"(candidate {action['candidate_metrics'].get('mae', 0):.1f} vs champion "
            f"{(action['champion_on_same_holdout'] or {}).get('mae', float('nan')):.1f} MAE on "
            f"the same holdout; server swapped in {action['server_swap_seconds']}s)"
        )
    ba = s["error_before_after"]
    if ba.get("retrained") and ba.get("months"):
        console.print(
            f"[bold]before/after[/] {ba['months'][0]}..{ba['months'][-1]}: the first model "
            f"{ba['first_model']} would have scored MAE {ba['first_model_mae']}; the champions "
            f"the loop served scored MAE {ba['served_by_loop_mae']} "
            f"([green]{ba['improvement']:.0%} lower[/]); champion now {ba['final_champion']}"
        )
    audit = s["audit"]
    console.print(
        f"audit trail: {audit['events']} events, "
        + ("[green]verified[/]" if audit["verified"] else "[red]BROKEN[/]")
        + f"; lineage of {s['lineage']['root']}: {s['lineage']['upstream_nodes']} nodes, "
        f"{s['lineage']['upstream_runs']} runs, {s['lineage']['raw_files']} raw files; "
        f"{s['openlineage_events']} OpenLineage events"
    )
    console.print(
        f"explore: cd {s['project']} && gyre models show demand && "
        "gyre lineage endpoint:demand --upstream && gyre audit verify"
    )
