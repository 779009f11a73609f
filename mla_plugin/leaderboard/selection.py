"""``--tune``'s selection as the reports show it: ``tuning.json`` read back, its header
line, and the table of each study's trials (with the pruned, diverged and failed counts),
best trial and parameters.  Neither torch nor MMF, nor Optuna."""

from __future__ import annotations

import json
import os

from mla_plugin.leaderboard.methods import dataset_label, variant_label, variant_order

TUNING_FILE = "tuning.json"


def load_selection(out: str) -> dict | None:
    try:
        with open(os.path.join(out, TUNING_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def header(selection: dict | None) -> str:
    if not selection:
        return "Hyper-parameters: untuned (fixed protocol)."
    pruner = (selection.get("pruner") or {}).get("pruner", "none")
    pruning = "no pruning" if pruner == "none" else f"{pruner} pruner"
    sampler = selection["sampler"]
    if "pruning" not in sampler:  # an earlier tuning.json says it in the sampler's text
        sampler += f", {pruning}"
    return (
        f"Hyper-parameters: tuned on val, {selection['budget']} trials per method "
        f"(Optuna {sampler}; tuning seeds {selection['tuning_seeds']})."
    )


def trial_counts(s: dict) -> str:
    """``4 (1 pruned, 1 diverged)``: a study's trials and how many ended early."""
    ends = [f"{s.get(k, 0)} {k}" for k in ("pruned", "diverged", "failed") if s.get(k)]
    return f"{s['trials']}" + (f" ({', '.join(ends)})" if ends else "")


def frame(selection: dict | None):
    """The selection as a table: one row per study (None when untuned)."""
    import pandas as pd

    if not selection:
        return None
    studies = list(selection["studies"].values())
    order = variant_order({s["method"] for s in studies})  # the tables' method order
    studies.sort(key=lambda s: (s["dataset"], order.index(s["method"]), s["setting"]))
    rows = [
        {
            "dataset": s["dataset"],
            "method": s["method"],
            "setting": s["setting"],
            "trials": s["trials"],
            "failed": s["failed"],
            "best_trial": s["best_trial"],
            "best_val": round(100 * s["best_val"], 2),
            "params": " ".join(f"{k}={short(v)}" for k, v in sorted(s["params"].items())),
            "pruned": s.get("pruned", 0),
            "diverged": s.get("diverged", 0),
        }
        for s in studies
    ]
    return pd.DataFrame(rows)


def short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(selection: dict | None) -> str:
    table = frame(selection)
    if table is None:
        return ""
    lines = [
        "## Selected hyper-parameters",
        "",
        f"{header(selection)} Best val: the best trial's fused val accuracy (%).",
        "",
        "| dataset | method | trials | best trial | best val | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {dataset_label(r.dataset)} | {variant_label(r.method)} | {trial_counts(r._asdict())}"
            f" | {r.best_trial} | {r.best_val:.2f} | {r.params} |"
        )
    return "\n".join(lines)


def html(selection: dict | None) -> str:
    """The header line, and the selection's table when tuned, for ``index.html``."""
    from html import escape

    parts = [f'<p class="tuning">{escape(header(selection))}</p>\n']
    table = frame(selection)
    if table is not None:
        heads = ["dataset", "method", "trials", "best trial", "best val (%)", "parameters"]
        parts.append("<h2>Selected hyper-parameters</h2>\n<table><thead><tr>")
        parts.append("".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>\n")
        for r in table.itertuples():
            cells = [dataset_label(r.dataset), variant_label(r.method), trial_counts(r._asdict())]
            cells += [r.best_trial]
            cells += [f"{r.best_val:.2f}", r.params]
            parts.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>\n")
        parts.append("</tbody></table>\n")
    return "".join(parts)
