"""The modality gap in the reports: each run's row carries it under ``"gap"`` (the dict
``python -m mla_plugin.analysis.gap`` writes, or None); :func:`gap_frame` is
``modality_gap.csv`` and :func:`gap_table` the table."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import pandas as pd

from mla_plugin.leaderboard.methods import dataset_label, variant_label, variant_order
from mla_plugin.leaderboard.reports.frames import base_rate, datasets
from mla_plugin.leaderboard.reports.table import Table, summarise

GAP_COLUMNS = [
    "dataset",
    "method",
    "variant",
    "seed",
    "missing_rate",
    "split",
    "gap",
    "pairs",
    "run_dir",
]


def gap_frame(runs: Sequence[dict], out: str = ".") -> pd.DataFrame:
    """One row per run with a computed modality gap."""
    rows = [
        {
            "dataset": r["dataset"],
            "method": r["method"],
            "variant": r["variant"],
            "seed": r["seed"],
            "missing_rate": r["missing_rate"],
            "split": r["gap"].get("split", "test"),
            "gap": r["gap"]["gap"],
            "pairs": json.dumps(r["gap"].get("pairs", {}), sort_keys=True),
            "run_dir": os.path.relpath(r["run_dir"], out),
        }
        for r in runs
        if r.get("gap")
    ]
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def gap_table(runs) -> Table | None:
    with_gap = [r for r in runs if r.get("gap")]
    if not with_gap:
        return None
    rate = base_rate(with_gap)
    variants = variant_order({r["variant"] for r in with_gap})
    frame = gap_frame(with_gap)
    frame["gap"] = pd.to_numeric(frame["gap"], errors="coerce")
    stats = summarise(frame[frame["missing_rate"] == rate], ["dataset", "variant"], value="gap")
    rows = datasets(with_gap)
    return Table.from_stats(
        "Modality gap on the test set (lower = modalities closer)",
        stats,
        rows,
        variants,
        pd.Index([dataset_label(ds) for ds in rows], name="Data"),
        [variant_label(v) for v in variants],
        mark_axis=None,
        note="distance between the centroids of the modalities' L2-normalised encoder "
        "embeddings (paper §3.3.3, after Liang et al. 2022); 0 = same centre, "
        "2 = opposite",
        decimals=3,
    )
