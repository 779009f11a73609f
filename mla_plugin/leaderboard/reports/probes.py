"""What the reports read from Table 1's reference runs (pure pandas/numpy): the unimodal
runs as one column, and the fused accuracy of each method against the concatenated linear
probe (:mod:`mla_plugin.analysis.probe` fits the probes, in the probe cell's own process).

:func:`flags`: a method whose fused test accuracy is within :data:`CHANCE_POINTS` of the
majority-class rate, or more than :data:`PROBE_POINTS` under the concatenated probe, is
flagged in the report -- such a number says more about the method's settings than about
the method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mla_plugin.leaderboard.methods import (
    METHOD_LABELS,
    PROBE,
    UNIMODAL,
    dataset_label,
    reference_modality,
    variant_order,
)
from mla_plugin.leaderboard.reports.table import Table

CHANCE_POINTS = 2.0
PROBE_POINTS = 10.0


def unimodal_reference(runs: Sequence[dict]) -> list[dict]:
    """The per-modality ``unimodal[modality=<m>]`` runs as one ``unimodal`` column: each
    run keeps only its own modality's accuracy (its Multi equals it, and is left out)."""
    out = []
    for r in runs:
        own = reference_modality(r["variant"])
        if r["method"] != UNIMODAL or own is None:
            out.append(r)
            continue
        keep = dict(r, variant=UNIMODAL)
        for split in ("val", "test"):
            keep[split] = {k: v for k, v in (r.get(split) or {}).items() if k == own}
        out.append(keep)
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) * 100 if values else None


def probe_gaps(runs: Sequence[dict]) -> list[dict]:
    """Per dataset and method (plain variants, not the references): the fused test
    accuracy, the majority-class rate and the concatenated probe (all %, means over
    seeds), the distance to the probe, and the report's flags."""
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    for ds in datasets:
        mine = [r for r in runs if r["dataset"] == ds]
        probe = _mean([r["test"].get("multi") for r in mine if r["method"] == PROBE])
        methods = list(
            dict.fromkeys(
                r["method"]
                for r in mine
                if r["variant"] == r["method"] and r["method"] not in (PROBE, UNIMODAL)
            )
        )
        for method in methods:
            rs = [r for r in mine if r["method"] == method and r["variant"] == method]
            fused = _mean([r["test"].get("multi") for r in rs])
            chance = _mean(
                [
                    ((r.get("majority") or {}).get("test") or {}).get("rate", {}).get("multi")
                    for r in rs
                ]
            )
            flags = []
            if fused is not None and chance is not None and fused - chance <= CHANCE_POINTS:
                flags.append(f"within {CHANCE_POINTS:g} points of the majority class")
            if fused is not None and probe is not None and probe - fused > PROBE_POINTS:
                flags.append(f"more than {PROBE_POINTS:g} points under the concatenated probe")
            out.append(
                {
                    "dataset": ds,
                    "method": method,
                    "fused": fused,
                    "chance": chance,
                    "probe": probe,
                    "minus_probe": None if fused is None or probe is None else fused - probe,
                    "flags": flags,
                }
            )
    return out


def flags(runs: Sequence[dict]) -> list[str]:
    """The report's flag lines, e.g. ``features: FiLM 13.2 % is within 2 points of the
    majority class (12.0 %)``."""
    lines = []
    for g in probe_gaps(runs):
        for flag in g["flags"]:
            ref = (
                f"majority class {g['chance']:.2f} %"
                if "majority" in flag
                else f"probe {g['probe']:.2f} %"
            )
            lines.append(
                f"{dataset_label(g['dataset'])}: {METHOD_LABELS.get(g['method'], g['method'])} "
                f"fused {g['fused']:.2f} % is {flag} ({ref})"
            )
    return lines


def probe_table(runs: Sequence[dict]):
    """Table: per dataset (rows) and method (columns), the fused test accuracy minus the
    concatenated probe's, in points; the flags as its note.  None without probe runs."""
    gaps = [g for g in probe_gaps(runs) if g["probe"] is not None]
    if not gaps:
        return None
    datasets = list(dict.fromkeys(g["dataset"] for g in gaps))
    methods = variant_order({g["method"] for g in gaps})
    means = pd.DataFrame(
        math.nan,
        index=pd.Index([dataset_label(d) for d in datasets], name="Data"),
        columns=[METHOD_LABELS.get(m, m) for m in methods],
    )
    for g in gaps:
        if g["minus_probe"] is not None:
            means.iat[datasets.index(g["dataset"]), methods.index(g["method"])] = g["minus_probe"]
    lines = flags(runs)
    note = (
        f"fused test accuracy minus the logistic-regression probe on all modalities "
        f"(points). Flagged: a method within {CHANCE_POINTS:g} points of the majority class "
        f"or more than {PROBE_POINTS:g} points under the probe"
        + (": " + "; ".join(lines) if lines else ": none")
    )
    nan = pd.DataFrame(math.nan, index=means.index, columns=means.columns)
    return Table(
        "Reference check: fused accuracy against the concatenated linear probe",
        means,
        nan,
        nan.fillna(1).astype(int),
        mark_axis=None,
        note=note,
    )
