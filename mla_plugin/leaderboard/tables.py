"""The leaderboard's tables, from the finished runs (as :func:`report.load_runs` reads them):

- :func:`tidy` / :func:`gap_frame`: the tidy frames behind ``leaderboard.csv`` and
  ``modality_gap.csv``, which the tables aggregate;
- :func:`table1` (the paper's layout: rows dataset × modality, columns methods),
  :func:`table2` (Multi against the missing rate), :func:`table3` (MLA's ablation),
  :func:`gap_table` (the modality gap) and :func:`paper_table1` (the paper's numbers);
- :class:`Table`, :func:`mark_best` (best/second per row or column, among the cells above
  chance) and :func:`to_markdown`.

Numbers are test accuracy in %, mean ± sample standard deviation (ddof 1) over seeds,
aggregated with one ``groupby`` per table.

Chance is the majority-class rate of the test split, as the trainer writes it into
``metrics.json`` (``majority.test.rate``: the share of the samples each accuracy counts
that belong to the split's most frequent class), averaged over the same runs as the
accuracy.  A cell is *at chance* when its mean accuracy is not above that rate by more
than :data:`CHANCE_TOLERANCE` percentage points (below it counts too); such a cell is
never marked best or second, and is shown with :data:`CHANCE_MARK`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mla_plugin.leaderboard import paper
from mla_plugin.leaderboard.methods import (
    ABLATION,
    ABLATION_LABELS,
    METHOD_LABELS,
    METHODS,
    REFERENCES,
    dataset_label,
    variant_label,
    variant_order,
)
from mla_plugin.leaderboard.probes import unimodal_reference

CSV_COLUMNS = [
    "dataset",
    "method",
    "variant",
    "seed",
    "missing_rate",
    "split",
    "modality",
    "accuracy",
    "chance",
    "roc_auc",  # binary tasks: MMF's roc_auc (metrics.json's roc_auc); empty otherwise
    "selected_epoch",
    "selection",
    "run_dir",
    "train_mask",
]
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


# ------------------------------------------------------------------ frames
def mask_text(train_mask) -> str:
    """A run's training mask as ``modality:ratio`` ("" for none)."""
    return f"{train_mask[0]}:{float(train_mask[1]):g}" if train_mask else ""


def tidy(runs: Sequence[dict], out: str = ".") -> pd.DataFrame:
    """One row per run × split × modality (``multi`` = the fused prediction)."""
    rows = [
        {
            "dataset": r["dataset"],
            "method": r["method"],
            "variant": r["variant"],
            "seed": r["seed"],
            "missing_rate": r["missing_rate"],
            "split": split,
            "modality": modality,
            "accuracy": acc,
            "chance": ((r.get("majority") or {}).get(split) or {}).get("rate", {}).get(modality),
            "roc_auc": ((r.get("roc_auc") or {}).get(split) or {}).get(modality),
            "selected_epoch": r["selected_epoch"],
            "selection": r["selection"],
            "run_dir": os.path.relpath(r["run_dir"], out),
            "train_mask": mask_text(r.get("train_mask")),
        }
        for r in runs
        for split in ("val", "test")
        for modality, acc in r[split].items()
    ]
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    frame["accuracy"] = pd.to_numeric(frame["accuracy"], errors="coerce")
    frame["chance"] = pd.to_numeric(frame["chance"], errors="coerce")
    frame["roc_auc"] = pd.to_numeric(frame["roc_auc"], errors="coerce")
    return frame


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


def _test_percent(runs) -> pd.DataFrame:
    """The tidy frame's test rows with ``value`` = accuracy in % and ``chance_value`` = the
    majority-class rate in % (NaN where the accuracy is missing, so a cell's chance averages
    the same runs as its accuracy)."""
    frame = tidy(runs)
    frame = frame[frame["split"] == "test"].copy()
    frame["value"] = 100 * frame["accuracy"]
    frame["chance_value"] = (100 * frame["chance"]).where(frame["value"].notna())
    return frame


# The mean and std as numpy computes them (pairwise sums, two-pass variance), so the
# tables keep the digits they have always shown: pandas' own groupby mean/std sum
# differently (Kahan, Welford), which can move a value across a rounding boundary.
def _mean(values: pd.Series) -> float:
    return float(values.to_numpy(float).mean())


def _std(values: pd.Series) -> float:
    v = values.to_numpy(float)
    return float(v.std(ddof=1)) if len(v) > 1 else math.nan


def summarise(frame: pd.DataFrame, by: list[str], value: str = "value") -> pd.DataFrame:
    """``mean``, ``std`` (ddof 1; NaN for one value) and ``count`` of ``value`` per group of
    ``by``, missing values left out; groups in order of appearance."""
    valid = frame[frame[value].notna()]
    return valid.groupby(by, sort=False)[value].agg(mean=_mean, std=_std, count="size")


CHANCE_TOLERANCE = 0.5
"""Percentage points above the majority-class rate within which a mean is at chance."""
CHANCE_MARK = "†"


class Table:
    """Means and stds (in the table's unit) with row and column labels; ``marks`` says
    which cells are best/second along ``mark_axis`` (1: within a row, 0: within a column)
    and which are at chance; ``chance`` (same shape, NaN where unknown) is each cell's
    majority-class rate in the table's unit."""

    def __init__(
        self,
        title,
        means: pd.DataFrame,
        stds: pd.DataFrame,
        counts: pd.DataFrame,
        mark_axis: int | None = 1,
        note: str = "",
        decimals: int = 2,
        chance: pd.DataFrame | None = None,
    ):
        self.title, self.means, self.stds, self.counts = title, means, stds, counts
        self.note, self.decimals = note, decimals
        if chance is None:
            chance = pd.DataFrame(math.nan, index=means.index, columns=means.columns)
        self.chance = chance
        self.marks = pd.DataFrame("", index=means.index, columns=means.columns)
        if mark_axis == 1:
            self.marks = mark_best(means, decimals, chance)
        elif mark_axis == 0:
            self.marks = mark_best(means.T, decimals, chance.T).T
        elif mark_axis is None and chance.notna().any().any():
            self.marks = self.marks.mask(at_chance(means, chance), "chance")

    @classmethod
    def from_stats(
        cls,
        title,
        stats: pd.DataFrame,
        rows: list,
        columns: list,
        index: pd.Index,
        labels: list,
        chance_stats: pd.DataFrame | None = None,
        **kwargs,
    ) -> Table:
        """A table of ``stats`` (from :func:`summarise`, keyed by row key + column key):
        ``rows`` and ``columns`` the keys in display order, ``index`` and ``labels`` what
        they are called; a cell without values is NaN with count 0.  ``chance_stats``
        (keyed alike): the cells' majority-class rates, whose ``mean`` is ``chance``."""
        keys = pd.MultiIndex.from_tuples(
            [(*(r if isinstance(r, tuple) else (r,)), c) for r in rows for c in columns]
        )
        grid = stats.reindex(keys)
        shape = (len(rows), len(columns))

        def frame(column, fill=None):
            values = grid[column] if fill is None else grid[column].fillna(fill).astype(int)
            return pd.DataFrame(values.to_numpy().reshape(shape), index, labels)

        if chance_stats is not None:
            chance = chance_stats.reindex(keys)["mean"].to_numpy(float).reshape(shape)
            kwargs["chance"] = pd.DataFrame(chance, index, labels)
        return cls(title, frame("mean"), frame("std"), frame("count", 0), **kwargs)

    def cell(self, i, j) -> str:
        mean, std = self.means.iat[i, j], self.stds.iat[i, j]
        if isinstance(mean, float) and math.isnan(mean):
            return "–"
        text = f"{mean:.{self.decimals}f}"
        if not (isinstance(std, float) and math.isnan(std)):
            text += f" ± {std:.{self.decimals}f}"
        return text

    def index_cells(self, i: int) -> list[str]:
        key = self.means.index[i]
        return [str(k) for k in key] if isinstance(key, tuple) else [str(key)]

    def chance_legend(self) -> str:
        """The line under a table that says what :data:`CHANCE_MARK` means and the
        majority-class rates (per dataset for rows dataset × modality, else per column);
        "" for a table without chance rates."""
        chance = self.chance
        if not chance.notna().any().any():
            return ""
        if isinstance(chance.index, pd.MultiIndex):
            groups = {
                g: chance.loc[g].to_numpy(float)
                for g in dict.fromkeys(chance.index.get_level_values(0))
            }
        else:
            groups = {c: chance[c].to_numpy(float) for c in chance.columns}
        rates = []
        for name, values in groups.items():
            values = values[np.isfinite(values)]
            if len(values):
                lo, hi = values.min(), values.max()
                d = self.decimals
                text = f"{lo:.{d}f}" if round(lo, d) == round(hi, d) else f"{lo:.{d}f}–{hi:.{d}f}"
                rates.append(f"{name} {text}")
        return (
            f"{CHANCE_MARK} at chance: the mean is not above the majority-class rate of the "
            f"test split by more than {CHANCE_TOLERANCE:g} points, and is never marked best "
            f"or second. Majority-class rate: {'; '.join(rates)}"
        )


def at_chance(
    means: pd.DataFrame, chance: pd.DataFrame, tolerance: float = CHANCE_TOLERANCE
) -> pd.DataFrame:
    """True where a mean is known and not above its chance rate by more than
    ``tolerance`` (same unit); False where either is NaN."""
    m = means.apply(pd.to_numeric, errors="coerce").astype(float)
    c = chance.reindex(index=means.index, columns=means.columns).astype(float)
    return pd.DataFrame(
        (m.to_numpy() - c.to_numpy()) <= tolerance, index=means.index, columns=means.columns
    )


def mark_best(
    means: pd.DataFrame,
    decimals: int = 2,
    chance: pd.DataFrame | None = None,
    tolerance: float = CHANCE_TOLERANCE,
) -> pd.DataFrame:
    """Per row: ``"chance"`` for a mean at chance (:func:`at_chance`, when ``chance`` is
    given); among the others ``"best"`` for the highest mean (ties share it), ``"second"``
    for the next-highest distinct mean, ``""`` otherwise; NaN never ranks.  Means are
    compared as displayed (rounded to ``decimals``), so what looks equal is marked equal.
    A row with a single value gets no best or second."""
    shown = means.apply(pd.to_numeric, errors="coerce").astype(float).round(decimals)
    ranked = shown.notna().sum(axis=1) >= 2
    chance_cells = (
        at_chance(means, chance, tolerance)
        if chance is not None
        else pd.DataFrame(False, index=means.index, columns=means.columns)
    )
    rank = shown.mask(chance_cells).rank(axis=1, method="dense", ascending=False)
    marks = pd.DataFrame("", index=means.index, columns=means.columns)
    marks = marks.mask(rank.eq(1).to_numpy() & ranked.to_numpy()[:, None], "best")
    marks = marks.mask(rank.eq(2).to_numpy() & ranked.to_numpy()[:, None], "second")
    return marks.mask(chance_cells, "chance")


# ------------------------------------------------------------------ the tables
def row_label(modality: str) -> str:
    return "Multi" if modality == "multi" else modality.replace("_", " ").capitalize()


def _modality_rows(runs: Sequence[dict], dataset: str) -> list[str]:
    mods: list[str] = []
    for r in runs:
        if r["dataset"] == dataset:
            mods += [
                m
                for m in r["modalities"] or [k for k in r["test"] if k != "multi"]
                if m not in mods
            ]
    return mods + ["multi"]


def datasets(runs) -> list[str]:
    """The runs' datasets in order of appearance."""
    return list(dict.fromkeys(r["dataset"] for r in runs))


def base_rate(runs) -> float:
    rates = sorted({r["missing_rate"] for r in runs})
    return 0.0 if 0.0 in rates else (rates[0] if rates else 0.0)


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
    (:mod:`~mla_plugin.leaderboard.probes`; Multi is the probe on all modalities)."""
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
        "concatenated, in Multi) and are not ranked",
    )
    refs = [columns[v] for v in REFERENCES if v in columns]
    if table is not None and refs:  # best/second among the methods only
        methods = [c for c in table.means.columns if c not in refs]
        marks = mark_best(table.means[methods], table.decimals, table.chance[methods])
        chance = at_chance(table.means[refs], table.chance[refs])
        ref_marks = pd.DataFrame("", index=chance.index, columns=refs).mask(chance, "chance")
        table.marks = pd.concat([marks, ref_marks], axis=1)[list(table.means.columns)]
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
    columns = {v: METHOD_LABELS.get(v, v) for v in variant_order({r["variant"] for r in binary})}
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


def table3(runs) -> Table | None:
    present = {r["variant"] for r in runs}
    corners = {k: v.name for k, v in ABLATION.items()}
    if not all(name in present for k, name in corners.items() if k != (True, True)):
        return None
    columns = {
        corners[k]: ABLATION_LABELS[k]
        for k in ((False, False), (False, True), (True, False), (True, True))
    }
    with_ablation = [
        ds
        for ds in datasets(runs)
        if any(r["dataset"] == ds and r["variant"] == corners[(False, False)] for r in runs)
    ]
    return _accuracy_table(
        runs,
        with_ablation,
        columns,
        base_rate(runs),
        "Table 3: ablation of MLA, test accuracy (%)",
        note="HGM: head gradient modification (model_config.mla.hgm owm | off); "
        "DF: dynamic (entropy) fusion (model_config.mla.fusion entropy | mean)",
    )


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


# ------------------------------------------------------------------ Markdown
def to_markdown(table: Table) -> str:
    names = [n or "" for n in table.means.index.names]
    header = names + [str(c) for c in table.means.columns]
    lines = [
        f"### {table.title}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * len(names) + ["---:"] * len(table.means.columns)) + "|",
    ]
    for i in range(len(table.means)):
        cells = []
        for j in range(len(table.means.columns)):
            text, mark = table.cell(i, j), table.marks.iat[i, j]
            cells.append(
                f"**{text}**"
                if mark == "best"
                else f"<ins>{text}</ins>"
                if mark == "second"
                else f"{text} {CHANCE_MARK}"
                if mark == "chance"
                else text
            )
        lines.append("| " + " | ".join(table.index_cells(i) + cells) + " |")
    if table.note:
        lines += ["", f"_{table.note}_"]
    legend = table.chance_legend()
    if legend:
        lines += ["", f"_{legend}_"]
    return "\n".join(lines) + "\n"
