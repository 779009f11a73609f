"""Table 2 (Multi against the missing rate, per dataset) and Figure 2's numbers (each
modality's accuracy with one modality masked in training only)."""

from __future__ import annotations

import pandas as pd

from mla_plugin.leaderboard.methods import dataset_label, variant_label, variant_order
from mla_plugin.leaderboard.reports.frames import (
    _modality_rows,
    _test_percent,
    base_rate,
    datasets,
    row_label,
)
from mla_plugin.leaderboard.reports.table import Table, summarise


def table2(runs) -> list[Table]:
    """Per dataset with more than one missing rate: rows methods, columns η, Multi %."""
    frame = _test_percent(runs)
    frame = frame[(frame["modality"] == "multi") & (frame["variant"] == frame["method"])]
    tables = []
    for ds in datasets(runs):
        sel = [r for r in runs if r["dataset"] == ds and r["variant"] == r["method"]]
        rates = sorted({r["missing_rate"] for r in sel})
        if len(rates) < 2:
            continue
        variants = variant_order({r["variant"] for r in sel})
        by = ["variant", "missing_rate"]
        stats = summarise(frame[frame["dataset"] == ds], by)
        index = pd.Index([variant_label(v) for v in variants], name="Method")
        tables.append(
            Table.from_stats(
                f"Table 2: {dataset_label(ds)}, Multi test accuracy (%) against the missing rate η",
                stats,
                variants,
                rates,
                index,
                [f"η={100 * rate:g}%" for rate in rates],
                chance_stats=summarise(frame[frame["dataset"] == ds], by, value="chance_value"),
                mark_axis=0,
                note="η: each modality of each sample is missing with probability η in "
                "train, val and test (at least one modality kept)",
            )
        )
    return tables


def figure2(runs) -> list[Table]:
    """Figure 2's numbers (the isolation experiment), per dataset with training-masked runs:
    rows masked modality × masking ratio × method, columns each modality's test accuracy
    and Multi (%), at the lowest missing rate η of those runs."""
    masked = [r for r in runs if r.get("train_mask")]
    tables = []
    for ds in datasets(masked):
        sel = [r for r in masked if r["dataset"] == ds and r["variant"] == r["method"]]
        rate = base_rate(sel)
        sel = [r for r in sel if r["missing_rate"] == rate]
        if not sel:
            continue
        frame = _test_percent(sel)
        frame["masked"] = [r[0] for r in frame["train_mask"].str.split(":")]
        frame["ratio"] = [float(r[1]) for r in frame["train_mask"].str.split(":")]
        mods = _modality_rows(sel, ds)
        masks = list(dict.fromkeys(r["train_mask"][0] for r in sel))
        masks = [m for m in mods if m in masks] + [m for m in masks if m not in mods]
        ratios = sorted({float(r["train_mask"][1]) for r in sel})
        variants = variant_order({r["variant"] for r in sel})
        rows = [
            (m, x, v)
            for m in masks
            for x in ratios
            for v in variants
            if any(
                r["train_mask"][0] == m and float(r["train_mask"][1]) == x and r["variant"] == v
                for r in sel
            )
        ]
        by = ["masked", "ratio", "variant", "modality"]
        index = pd.MultiIndex.from_tuples(
            [(row_label(m), f"{100 * x:g}%", variant_label(v)) for m, x, v in rows],
            names=["Masked in training", "Ratio", "Method"],
        )
        tables.append(
            Table.from_stats(
                f"Figure 2: {dataset_label(ds)}, test accuracy (%) with one modality masked "
                "in training only" + (f" (η = {rate:g})" if rate else ""),
                summarise(frame, by),
                rows,
                mods,
                index,
                [row_label(m) for m in mods],
                chance_stats=summarise(frame, by, value="chance_value"),
                mark_axis=None,
                note="the masked modality is absent (zero-filled, mask False) in that fraction "
                "of the train samples (dataset_config.<dataset>.train_mask); val and test "
                "complete; columns: each modality's unimodal accuracy and Multi",
            )
        )
    return tables
