"""Table 1 (the paper's layout: rows dataset x modality and Multi, columns the methods, then
the reference columns), the binary tasks' ROC-AUC beside it and the paper's own Table 1.
Test accuracy in %, mean +- sample standard deviation (ddof 1) over seeds."""

from __future__ import annotations

import math

import pandas as pd

from mla_plugin.leaderboard import paper
from mla_plugin.leaderboard.methods import (
    METHOD_LABELS,
    METHODS,
    REFERENCES,
    dataset_label,
    split_test_selected,
    variant_label,
    variant_order,
)
from mla_plugin.leaderboard.reports.frames import (
    _modality_rows,
    _test_percent,
    base_rate,
    datasets,
    row_label,
    tidy,
)
from mla_plugin.leaderboard.reports.probes import unimodal_reference
from mla_plugin.leaderboard.reports.table import Table, at_chance, mark_best, summarise


def _accuracy_table(
    runs, dataset_keys, columns: dict[str, str], rate: float, title: str, note: str = ""
) -> Table | None:
    """Rows dataset × modality (+ Multi); ``columns``: {variant: label}; test accuracy %."""
    frame = _test_percent(runs)
    frame = frame[(frame["missing_rate"] == rate) & frame["variant"].isin(list(columns))]
    present = {r["dataset"] for r in runs if r["missing_rate"] == rate and r["variant"] in columns}
    rows = [(ds, mod) for ds in dataset_keys if ds in present for mod in _modality_rows(runs, ds)]
    if not rows:
        return None
    by = ["dataset", "modality", "variant"]
    stats = summarise(frame, by)
    index = pd.MultiIndex.from_tuples(
        [(dataset_label(ds), row_label(mod)) for ds, mod in rows], names=["Data", "Row"]
    )
    return Table.from_stats(
        title,
        stats,
        rows,
        list(columns),
        index,
        list(columns.values()),
        chance_stats=summarise(frame, by, value="chance_value"),
        note=note,
    )


def table1(runs) -> Table | None:
    """Rows dataset × modality, columns the methods, then the reference columns: Unimodal
    (each modality's row from its own ``unimodal-<modality>`` runs) and LR probe
    (:mod:`~mla_plugin.analysis.probe`; Multi is the probe on all modalities)."""
    runs = unimodal_reference(runs)
    variants = variant_order({r["variant"] for r in runs if r["variant"] == r["method"]})
    rate = base_rate(runs)
    columns = {v: variant_label(v) for v in variants}
    title = (
        "Table 1: test accuracy (%), complete modalities"
        if rate == 0
        else f"Table 1 layout: test accuracy (%) at missing rate η = {rate:g}"
    )
    table = _accuracy_table(
        runs,
        datasets(runs),
        columns,
        rate,
        title,
        note="rows: each modality's unimodal accuracy from the same model, "
        "and Multi (the fused prediction); Unimodal and LR probe are references (the "
        "unimodal model per modality; logistic regression on each modality and on all "
        "concatenated, in Multi) and are not ranked"
        + (
            "; nor are the ‡test-selected columns (each beside its fair one)"
            if any(split_test_selected(v)[1] for v in variants)
            else ""
        ),
    )
    # best/second among the fairly selected methods only: not the references, not ‡
    unranked = [columns[v] for v in REFERENCES if v in columns]
    unranked += [columns[v] for v in variants if split_test_selected(v)[1]]
    if table is not None and unranked:
        methods = [c for c in table.means.columns if c not in unranked]
        marks = mark_best(table.means[methods], table.decimals, table.chance[methods])
        chance = at_chance(table.means[unranked], table.chance[unranked])
        others = pd.DataFrame("", index=chance.index, columns=unranked).mask(chance, "chance")
        table.marks = pd.concat([marks, others], axis=1)[list(table.means.columns)]
    return table


def roc_auc_table(runs) -> Table | None:
    """The binary tasks' own MMF metric beside Table 1's accuracy: test ROC-AUC (%), rows
    dataset × modality (+ Multi), columns the methods; only datasets whose runs report
    ``roc_auc`` (Hateful Memes and every other 2-class task); None when none does."""
    binary = [r for r in runs if r["variant"] == r["method"] and r.get("roc_auc")]
    if not binary:
        return None
    rate = base_rate(binary)
    frame = tidy(binary)
    frame = frame[(frame["split"] == "test") & (frame["missing_rate"] == rate)].copy()
    frame["value"] = 100 * frame["roc_auc"]
    columns = {
        v: variant_label(v) if split_test_selected(v)[1] else METHOD_LABELS.get(v, v)
        for v in variant_order({r["variant"] for r in binary})
    }
    rows = [(ds, mod) for ds in datasets(binary) for mod in _modality_rows(binary, ds)]
    index = pd.MultiIndex.from_tuples(
        [(dataset_label(ds), row_label(mod)) for ds, mod in rows], names=["Data", "Row"]
    )
    return Table.from_stats(
        "Test ROC-AUC (%), binary tasks" + (f" at missing rate η = {rate:g}" if rate else ""),
        summarise(frame, ["dataset", "modality", "variant"]),
        rows,
        list(columns),
        index,
        list(columns.values()),
        note="MMF's roc_auc metric (the dataset's own, e.g. Hateful Memes'), from the same "
        "runs and selected epochs as Table 1's accuracy",
    )


def paper_table1(runs) -> Table | None:
    """The paper's Table 1 rows for the datasets of this leaderboard that it reports."""
    reported = [ds for ds in datasets(runs) if ds in paper.TABLE1]
    if not reported:
        return None
    index, means, stds = [], [], []
    for ds in reported:
        for row, values in paper.TABLE1[ds].items():
            index.append((dataset_label(ds), row_label(row)))
            means.append([values[m][0] for m in METHODS])
            stds.append([values[m][1] if values[m][1] is not None else math.nan for m in METHODS])
    idx = pd.MultiIndex.from_tuples(index, names=["Data", "Row"])
    cols = [METHOD_LABELS[m] for m in METHODS]
    return Table(
        "Reference: the paper's Table 1 (test accuracy %)",
        pd.DataFrame(means, idx, cols),
        pd.DataFrame(stds, idx, cols),
        pd.DataFrame(1, idx, cols),
        note=paper.CAVEAT,
    )
