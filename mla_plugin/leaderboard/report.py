"""The leaderboard's reports, built from whatever runs are in ``<out>/runs``:

- ``leaderboard.csv``: tidy, one row per run × split × modality (accuracy as a fraction);
- ``modality_gap.csv``: one row per run with a computed modality gap;
- ``leaderboard.md``: the tables in Markdown (best **bold**, second <ins>underlined</ins>);
- ``index.html``: one self-contained page (inline CSS and base64 PNG plots, no external
  resources) with the paper's Table 1 layout, Table 2 (missing rates) with a line plot,
  Table 3 (ablation), a bar chart with error bars, a per-modality ("laziness") chart per
  method, the modality gap and the protocol beside the numbers.

Tables show test accuracy in %, mean ± sample standard deviation (ddof 1) over seeds.
All files are written atomically.
"""
from __future__ import annotations

import base64
import glob
import html
import io
import json
import math
import os
import platform
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from mla_plugin.leaderboard import paper
from mla_plugin.leaderboard.gap import GAP_FILE, load_run_config
from mla_plugin.leaderboard.runner import ABLATION, ALL_METHODS, METHODS
from mla_plugin.utils.io import atomic_write_text

METHOD_LABELS = {"sum": "Sum", "concat": "Concat", "late_fusion": "Late Fusion", "film": "FiLM",
                 "bigated": "BiGated", "ogm_ge": "OGM-GE", "qmf": "QMF", "mla": "MLA",
                 "unimodal": "Unimodal"}
ABLATION_LABELS = {(False, False): "HGM✗ DF✗", (False, True): "HGM✗ DF✓",
                   (True, False): "HGM✓ DF✗", (True, True): "HGM✓ DF✓ (MLA)"}
DATASET_LABELS = {"cremad": "CREMA-D", "ks": "KS", "food101": "Food-101", "mvsa": "MVSA",
                  "iemocap": "IEMOCAP", "avdigits": "avdigits", "synthetic": "synthetic"}
SELECTION_RULES = {
    "val": "the epoch with the best validation Multi (fused) accuracy; test accuracy at that epoch",
    "last": "the last epoch",
    "best_on_test": "LEGACY: the epoch with the best test accuracy (the authors' code); optimistic",
}
CSV_COLUMNS = ["dataset", "method", "variant", "seed", "missing_rate", "split", "modality",
               "accuracy", "selected_epoch", "selection", "run_dir"]


# ------------------------------------------------------------------ loading
def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_runs(out: str) -> List[dict]:
    """Every finished run under ``<out>/runs/<dataset>/<variant>/eta<η>/seed<s>/``."""
    runs = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "metrics.json"))):
        run_dir = os.path.dirname(path)
        metrics = _read_json(path)
        if not metrics:
            continue
        cell = _read_json(os.path.join(run_dir, "cell.json")) or {}
        parts = os.path.relpath(run_dir, os.path.join(out, "runs")).split(os.sep)
        rate = cell.get("missing_rate")
        if rate is None:
            rate = float(parts[2][3:]) if parts[2].startswith("eta") else 0.0
        runs.append({
            "dataset": cell.get("dataset", parts[0]), "method": metrics["method"],
            "variant": cell.get("variant", parts[1]), "seed": int(metrics["seed"]),
            "missing_rate": float(rate), "selection": metrics.get("selection"),
            "selected_epoch": metrics.get("selected_epoch"),
            "modalities": list(metrics.get("modalities") or []),
            "val": metrics.get("val") or {}, "test": metrics.get("test") or {},
            "gap": _read_json(os.path.join(run_dir, GAP_FILE)),
            "seconds": cell.get("seconds"), "overrides": cell.get("overrides", []),
            "variant_overrides": cell.get("variant_overrides", []),
            "config": cell.get("config"), "run_dir": run_dir,
        })
    return runs


def load_failures(out: str) -> List[dict]:
    """Cells whose last attempt failed and that have no metrics.json (a ``cell.json``
    without ``ok`` is a run still going or interrupted, not a failure)."""
    failed = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "cell.json"))):
        cell = _read_json(path)
        run_dir = os.path.dirname(path)
        if cell and cell.get("ok") is False and not os.path.isfile(os.path.join(run_dir, "metrics.json")):
            failed.append(dict(cell, run_dir=run_dir))
    return failed


def tidy(runs: Sequence[dict], out: str = ".") -> pd.DataFrame:
    """One row per run × split × modality (``multi`` = the fused prediction)."""
    rows = []
    for r in runs:
        for split in ("val", "test"):
            for modality, acc in r[split].items():
                rows.append({"dataset": r["dataset"], "method": r["method"], "variant": r["variant"],
                             "seed": r["seed"], "missing_rate": r["missing_rate"], "split": split,
                             "modality": modality, "accuracy": acc,
                             "selected_epoch": r["selected_epoch"], "selection": r["selection"],
                             "run_dir": os.path.relpath(r["run_dir"], out)})
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    frame["accuracy"] = pd.to_numeric(frame["accuracy"], errors="coerce")
    return frame


def gap_frame(runs: Sequence[dict], out: str = ".") -> pd.DataFrame:
    rows = [{"dataset": r["dataset"], "method": r["method"], "variant": r["variant"],
             "seed": r["seed"], "missing_rate": r["missing_rate"], "split": r["gap"].get("split", "test"),
             "gap": r["gap"]["gap"], "pairs": json.dumps(r["gap"].get("pairs", {}), sort_keys=True),
             "run_dir": os.path.relpath(r["run_dir"], out)}
            for r in runs if r.get("gap")]
    return pd.DataFrame(rows, columns=["dataset", "method", "variant", "seed", "missing_rate",
                                       "split", "gap", "pairs", "run_dir"])


# ------------------------------------------------------------------ tables
def _variant_order(variants) -> List[str]:
    """The paper's method order, then MLA's ablation variants, then anything else."""
    known = ALL_METHODS + [v.name for v in ABLATION.values()]
    ordered = [v for v in dict.fromkeys(known) if v in variants]
    return ordered + sorted(v for v in variants if v not in ordered)


def variant_label(variant: str) -> str:
    if variant in METHOD_LABELS:
        return METHOD_LABELS[variant]
    for key, v in ABLATION.items():
        if v.name == variant:
            return f"MLA {ABLATION_LABELS[key]}"
    return variant


def row_label(modality: str) -> str:
    return "Multi" if modality == "multi" else modality.replace("_", " ").capitalize()


def _modality_rows(runs: Sequence[dict], dataset: str) -> List[str]:
    mods: List[str] = []
    for r in runs:
        if r["dataset"] == dataset:
            mods += [m for m in r["modalities"] or [k for k in r["test"] if k != "multi"] if m not in mods]
    return mods + ["multi"]


def _datasets(runs) -> List[str]:
    seen = []
    for r in runs:
        if r["dataset"] not in seen:
            seen.append(r["dataset"])
    return seen


def _agg(values) -> tuple:
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))],
                   dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


class Table:
    """Means and stds (in the table's unit) with row and column labels; ``marks`` says
    which cells are best/second along ``mark_axis`` (1: within a row, 0: within a column)."""

    def __init__(self, title, means: pd.DataFrame, stds: pd.DataFrame, counts: pd.DataFrame,
                 mark_axis: Optional[int] = 1, note: str = "", decimals: int = 2):
        self.title, self.means, self.stds, self.counts = title, means, stds, counts
        self.note, self.decimals = note, decimals
        self.marks = pd.DataFrame("", index=means.index, columns=means.columns)
        if mark_axis == 1:
            self.marks = mark_best(means, decimals)
        elif mark_axis == 0:
            self.marks = mark_best(means.T, decimals).T

    def cell(self, i, j) -> str:
        mean, std = self.means.iat[i, j], self.stds.iat[i, j]
        if isinstance(mean, float) and math.isnan(mean):
            return "–"
        text = f"{mean:.{self.decimals}f}"
        if not (isinstance(std, float) and math.isnan(std)):
            text += f" ± {std:.{self.decimals}f}"
        return text


def mark_best(means: pd.DataFrame, decimals: int = 2) -> pd.DataFrame:
    """Per row: ``"best"`` for the highest mean (ties share it), ``"second"`` for the
    next-highest distinct mean, ``""`` otherwise; NaN never ranks.  Means are compared
    as displayed (rounded to ``decimals``), so what looks equal is marked equal.  A row
    with a single value gets no marks."""
    marks = pd.DataFrame("", index=means.index, columns=means.columns)
    for i in range(len(means)):
        values = pd.to_numeric(means.iloc[i], errors="coerce").round(decimals)
        valid = values.dropna()
        if len(valid) < 2:
            continue
        distinct = sorted(set(valid.tolist()), reverse=True)
        for j, v in enumerate(values.tolist()):
            if isinstance(v, float) and math.isnan(v):
                continue
            if v == distinct[0]:
                marks.iat[i, j] = "best"
            elif len(distinct) > 1 and v == distinct[1]:
                marks.iat[i, j] = "second"
    return marks


def _accuracy_table(runs, datasets, columns: Dict[str, str], rate: float, title: str,
                    note: str = "") -> Optional[Table]:
    """Rows dataset × modality (+ Multi); ``columns``: {variant: label}; test accuracy %."""
    index, means, stds, counts = [], [], [], []
    for ds in datasets:
        selected = [r for r in runs if r["dataset"] == ds and r["missing_rate"] == rate
                    and r["variant"] in columns]
        if not selected:
            continue
        for mod in _modality_rows(runs, ds):
            index.append((DATASET_LABELS.get(ds, ds), row_label(mod)))
            row_m, row_s, row_n = [], [], []
            for variant in columns:
                vals = [r["test"].get(mod) for r in selected if r["variant"] == variant]
                m, s, n = _agg([None if v is None else 100 * v for v in vals])
                row_m.append(m)
                row_s.append(s)
                row_n.append(n)
            means.append(row_m)
            stds.append(row_s)
            counts.append(row_n)
    if not index:
        return None
    idx = pd.MultiIndex.from_tuples(index, names=["Data", "Row"])
    cols = list(columns.values())
    return Table(title, pd.DataFrame(means, idx, cols), pd.DataFrame(stds, idx, cols),
                 pd.DataFrame(counts, idx, cols), note=note)


def _base_rate(runs) -> float:
    rates = sorted({r["missing_rate"] for r in runs})
    return 0.0 if 0.0 in rates else (rates[0] if rates else 0.0)


def table1(runs) -> Optional[Table]:
    variants = _variant_order({r["variant"] for r in runs if r["variant"] == r["method"]})
    rate = _base_rate(runs)
    columns = {v: METHOD_LABELS.get(v, v) for v in variants}
    title = "Table 1: test accuracy (%), complete modalities" if rate == 0 else \
        f"Table 1 layout: test accuracy (%) at missing rate η = {rate:g}"
    return _accuracy_table(runs, _datasets(runs), columns, rate, title,
                           note="rows: each modality's unimodal accuracy from the same model, "
                                "and Multi (the fused prediction)")


def table3(runs) -> Optional[Table]:
    present = {r["variant"] for r in runs}
    corners = {k: v.name for k, v in ABLATION.items()}
    if not all(name in present for k, name in corners.items() if k != (True, True)):
        return None
    columns = {corners[k]: ABLATION_LABELS[k] for k in ((False, False), (False, True), (True, False), (True, True))}
    datasets = [ds for ds in _datasets(runs)
                if any(r["dataset"] == ds and r["variant"] == corners[(False, False)] for r in runs)]
    return _accuracy_table(runs, datasets, columns, _base_rate(runs),
                           "Table 3: ablation of MLA, test accuracy (%)",
                           note="HGM: head gradient modification (model_config.mla.hgm owm | off); "
                                "DF: dynamic (entropy) fusion (model_config.mla.fusion entropy | mean)")


def table2(runs) -> List[Table]:
    """Per dataset with more than one missing rate: rows methods, columns η, Multi %."""
    tables = []
    for ds in _datasets(runs):
        sel = [r for r in runs if r["dataset"] == ds and r["variant"] == r["method"]]
        rates = sorted({r["missing_rate"] for r in sel})
        if len(rates) < 2:
            continue
        variants = _variant_order({r["variant"] for r in sel})
        means, stds, counts = [], [], []
        for v in variants:
            row = [_agg([None if x["test"].get("multi") is None else 100 * x["test"]["multi"]
                         for x in sel if x["variant"] == v and x["missing_rate"] == rate]) for rate in rates]
            means.append([a[0] for a in row])
            stds.append([a[1] for a in row])
            counts.append([a[2] for a in row])
        idx = pd.Index([METHOD_LABELS.get(v, v) for v in variants], name="Method")
        cols = [f"η={100 * rate:g}%" for rate in rates]
        tables.append(Table(f"Table 2: {DATASET_LABELS.get(ds, ds)}, Multi test accuracy (%) "
                            f"against the missing rate η", pd.DataFrame(means, idx, cols),
                            pd.DataFrame(stds, idx, cols), pd.DataFrame(counts, idx, cols), mark_axis=0,
                            note="η: each modality of each sample is missing with probability η in "
                                 "train, val and test (at least one modality kept)"))
    return tables


def gap_table(runs) -> Optional[Table]:
    with_gap = [r for r in runs if r.get("gap")]
    if not with_gap:
        return None
    rate = _base_rate(with_gap)
    variants = _variant_order({r["variant"] for r in with_gap})
    index, means, stds, counts = [], [], [], []
    for ds in _datasets(with_gap):
        index.append(DATASET_LABELS.get(ds, ds))
        row = [_agg([r["gap"]["gap"] for r in with_gap
                     if r["dataset"] == ds and r["variant"] == v and r["missing_rate"] == rate]) for v in variants]
        means.append([a[0] for a in row])
        stds.append([a[1] for a in row])
        counts.append([a[2] for a in row])
    idx = pd.Index(index, name="Data")
    cols = [variant_label(v) for v in variants]
    return Table("Modality gap on the test set (lower = modalities closer)", pd.DataFrame(means, idx, cols),
                 pd.DataFrame(stds, idx, cols), pd.DataFrame(counts, idx, cols), mark_axis=None,
                 note="distance between the centroids of the modalities' L2-normalised encoder "
                      "embeddings (paper §3.3.3, after Liang et al. 2022); 0 = same centre, 2 = opposite",
                 decimals=3)


def paper_table1(runs) -> Optional[Table]:
    """The paper's Table 1 rows for the datasets of this leaderboard that it reports."""
    datasets = [ds for ds in _datasets(runs) if ds in paper.TABLE1]
    if not datasets:
        return None
    methods = METHODS
    index, means, stds = [], [], []
    for ds in datasets:
        for row, values in paper.TABLE1[ds].items():
            index.append((DATASET_LABELS.get(ds, ds), row_label(row)))
            means.append([values[m][0] for m in methods])
            stds.append([values[m][1] if values[m][1] is not None else math.nan for m in methods])
    idx = pd.MultiIndex.from_tuples(index, names=["Data", "Row"])
    cols = [METHOD_LABELS[m] for m in methods]
    return Table("Reference: the paper's Table 1 (test accuracy %)", pd.DataFrame(means, idx, cols),
                 pd.DataFrame(stds, idx, cols), pd.DataFrame(1, idx, cols), note=paper.CAVEAT)


# ------------------------------------------------------------------ rendering
def _index_cells(table: Table, i: int) -> List[str]:
    key = table.means.index[i]
    return [str(k) for k in key] if isinstance(key, tuple) else [str(key)]


def to_markdown(table: Table) -> str:
    names = [n or "" for n in table.means.index.names]
    header = names + [str(c) for c in table.means.columns]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * len(names) + ["---:"] * len(table.means.columns)) + "|"]
    for i in range(len(table.means)):
        cells = []
        for j in range(len(table.means.columns)):
            text, mark = table.cell(i, j), table.marks.iat[i, j]
            cells.append(f"**{text}**" if mark == "best" else f"<ins>{text}</ins>" if mark == "second" else text)
        lines.append("| " + " | ".join(_index_cells(table, i) + cells) + " |")
    if table.note:
        lines += ["", f"_{table.note}_"]
    return "\n".join(lines) + "\n"


def to_html(table: Table, css_class: str = "leaderboard") -> str:
    names = [n or "" for n in table.means.index.names]
    out = [f'<table class="{css_class}">', "<caption>" + html.escape(table.title) + "</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(n)}</th>" for n in names]
    out += [f"<th>{html.escape(str(c))}</th>" for c in table.means.columns] + ["</tr></thead><tbody>"]
    multi = isinstance(table.means.index, pd.MultiIndex)
    spans = {}
    if multi:
        start = 0
        first = [k[0] for k in table.means.index]
        for i in range(1, len(first) + 1):
            if i == len(first) or first[i] != first[start]:
                spans[start] = i - start
                start = i
    for i in range(len(table.means)):
        keys = _index_cells(table, i)
        row = ["<tr>"]
        if multi:
            if i in spans:
                row.append(f'<th rowspan="{spans[i]}" class="group">{html.escape(keys[0])}</th>')
            row += [f"<th>{html.escape(k)}</th>" for k in keys[1:]]
        else:
            row += [f"<th>{html.escape(k)}</th>" for k in keys]
        for j in range(len(table.means.columns)):
            text, mark = html.escape(table.cell(i, j)), table.marks.iat[i, j]
            if mark == "best":
                row.append(f'<td class="best"><b>{text}</b></td>')
            elif mark == "second":
                row.append(f'<td class="second"><u>{text}</u></td>')
            else:
                row.append(f"<td>{text}</td>")
        out.append("".join(row) + "</tr>")
    out.append("</tbody></table>")
    if table.note:
        out.append(f'<p class="note">{html.escape(table.note)}</p>')
    return "\n".join(out)


# ------------------------------------------------------------------ plots
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def bar_chart(table: Table) -> Optional[str]:
    """Multi accuracy per method, one panel per dataset, ± std error bars."""
    plt = _plt()
    multi = [i for i, k in enumerate(table.means.index) if k[1] == "Multi"]
    if not multi:
        return None
    fig, axes = plt.subplots(1, len(multi), figsize=(max(4.5, 0.7 * len(table.means.columns) + 1.5) * len(multi), 3.6),
                             squeeze=False)
    for ax, i in zip(axes[0], multi):
        m, s = table.means.iloc[i].to_numpy(float), np.nan_to_num(table.stds.iloc[i].to_numpy(float))
        x = np.arange(len(m))
        colors = ["#c0392b" if c == "MLA" else "#5b7fa6" for c in table.means.columns]
        ax.bar(x, m, yerr=s, capsize=3, color=colors)
        ax.set_xticks(x, list(table.means.columns), rotation=35, ha="right")
        ax.set_title(f"{table.means.index[i][0]}: Multi")
        ax.set_ylabel("test accuracy (%)")
        finite = m[np.isfinite(m)]
        if len(finite):
            ax.set_ylim(max(0, finite.min() - 10), min(100, finite.max() + 5))
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def laziness_chart(table: Table, dataset_label: str) -> Optional[str]:
    """One panel per method: each modality's unimodal accuracy beside Multi."""
    plt = _plt()
    rows = [i for i, k in enumerate(table.means.index) if k[0] == dataset_label]
    if not rows:
        return None
    methods = list(table.means.columns)
    ncol = min(4, len(methods))
    nrow = math.ceil(len(methods) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.1 * ncol, 2.6 * nrow), squeeze=False, sharey=True)
    labels = [table.means.index[i][1] for i in rows]
    palette = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"]
    colors = [("#333333" if lab == "Multi" else palette[k % len(palette)]) for k, lab in enumerate(labels)]
    for j, method in enumerate(methods):
        ax = axes[j // ncol][j % ncol]
        m = np.array([table.means.iat[i, j] for i in rows], float)
        s = np.nan_to_num(np.array([table.stds.iat[i, j] for i in rows], float))
        ax.bar(np.arange(len(rows)), np.nan_to_num(m), yerr=s, capsize=2, color=colors)
        for k, v in enumerate(m):
            if not np.isfinite(v):
                ax.text(k, 2, "n/a", ha="center", fontsize=7)
        ax.set_xticks(np.arange(len(rows)), labels, fontsize=8)
        ax.set_title(method, fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    for j in range(len(methods), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"{dataset_label}: per-modality accuracy (a lazy modality is far below the others)",
                 fontsize=10)
    fig.tight_layout()
    return _png(fig)


def missing_rate_plot(table: Table) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    rates = [float(c.split("=")[1].rstrip("%")) for c in table.means.columns]
    for i, method in enumerate(table.means.index):
        m, s = table.means.iloc[i].to_numpy(float), np.nan_to_num(table.stds.iloc[i].to_numpy(float))
        ax.errorbar(rates, m, yerr=s, marker="o", capsize=3, label=method,
                    linewidth=2.5 if method == "MLA" else 1.2)
    ax.set_xlabel("missing rate η (%)")
    ax.set_ylabel("Multi test accuracy (%)")
    ax.set_title(table.title.split(",")[0].replace("Table 2: ", ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _png(fig)


def gap_plot(table: Table) -> str:
    plt = _plt()
    n = len(table.means.index)
    fig, axes = plt.subplots(1, n, figsize=(max(3.5, 0.8 * len(table.means.columns) + 1.5) * n, 3.4), squeeze=False)
    for ax, i in zip(axes[0], range(n)):
        m, s = table.means.iloc[i].to_numpy(float), np.nan_to_num(table.stds.iloc[i].to_numpy(float))
        x = np.arange(len(m))
        ax.bar(x, np.nan_to_num(m), yerr=s, capsize=3,
               color=["#c0392b" if c == "MLA" else "#5b7fa6" for c in table.means.columns])
        ax.set_xticks(x, list(table.means.columns), rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("modality gap")
        ax.set_title(f"{table.means.index[i]}: modality gap (test)")
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


# ------------------------------------------------------------------ protocol
def package_versions() -> Dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "mmf", "mla-plugin", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _encoders_text(config: dict) -> str:
    model_cfg = (config.get("model_config") or {}).get(config.get("model"), {}) or {}
    encoders = model_cfg.get("encoders") or (config.get("multimodal") or {}).get("encoders") or {}
    parts = []
    for m, spec in encoders.items():
        if m == "default" or not isinstance(spec, dict):
            continue
        params = ", ".join(f"{k}={v}" for k, v in (spec.get("params") or {}).items())
        parts.append(f"{m}: {spec.get('type')}({params})")
    return "; ".join(parts) or "?"


def protocol(runs, out: str) -> Dict[str, Dict[str, str]]:
    """Per dataset, the settings the numbers depend on (read from a run's saved config)."""
    result = {}
    for ds in _datasets(runs):
        sel = [r for r in runs if r["dataset"] == ds]
        ref = next((r for r in sel if r["variant"] == "mla"), sel[0])
        try:
            cfg = load_run_config(ref["run_dir"])
        except Exception as exc:  # a report without the protocol beats no report
            cfg = {}
            error = f"(config unavailable: {exc})"
        else:
            error = ""
        training, opt = cfg.get("training", {}) or {}, cfg.get("optimizer", {}) or {}
        sched = (cfg.get("scheduler", {}) or {}).get("params", {}) or {}
        selections = sorted({r["selection"] for r in sel if r["selection"]})
        seeds = sorted({r["seed"] for r in sel})
        dcfg = (cfg.get("dataset_config", {}) or {}).get(str(cfg.get("datasets", ds)).split(",")[0], {}) or {}
        overrides = sorted({o for r in sel for o in r.get("overrides") or []})
        seconds = [r["seconds"] for r in sel if r.get("seconds")]
        info = {
            "config": ref.get("config") or "?",
            "split": "train for training, val for model selection, test for every number shown"
                     + (f" (val_fraction {dcfg['val_fraction']})" if "val_fraction" in dcfg else ""),
            "model selection": "; ".join(SELECTION_RULES.get(s, s) for s in selections) or "?",
            "seeds": ", ".join(map(str, seeds)) + f" ({len(seeds)} per cell; mean ± sample std)",
            "epochs": str(training.get("max_epochs", "?")),
            "batch size": str(training.get("batch_size", "?")),
            "optimizer": f"{opt.get('type', '?')} " + ", ".join(f"{k} {v}" for k, v in (opt.get("params") or {}).items()),
            "lr schedule": f"StepLR step {sched.get('step_size', '?')} epochs, gamma {sched.get('gamma', '?')}"
                           if training.get("lr_scheduler") else "none",
            "encoders": _encoders_text(cfg) if cfg else "?",
            "missing rates η": ", ".join(f"{x:g}" for x in sorted({r["missing_rate"] for r in sel})),
            "leaderboard overrides": " ".join(overrides) or "none",
            "runs": f"{len(sel)} finished" + (f", {sum(seconds) / 60:.1f} min of run time" if seconds else ""),
        }
        if error:
            info["note"] = error
        result[DATASET_LABELS.get(ds, ds)] = info
    return result


# ------------------------------------------------------------------ writing
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1600px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table.leaderboard,table.protocol{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.leaderboard caption{text-align:left;font-weight:600;padding:.3em 0}
table.leaderboard th,table.leaderboard td{border:1px solid #ccc;padding:.25em .5em;white-space:nowrap}
table.leaderboard td{text-align:right;font-variant-numeric:tabular-nums}
table.leaderboard thead th{background:#f2f2f2}
td.best{background:#e8f3e8}td.second{background:#f7f7e4}
table.protocol th{text-align:left;vertical-align:top;padding:.2em .6em .2em 0;white-space:nowrap}
table.protocol td{padding:.2em 0}
.side{display:grid;grid-template-columns:minmax(0,max-content) minmax(280px,520px);gap:1.5em;
align-items:start}.side>div{min-width:0}
.side>aside{background:#fafafa;border:1px solid #e3e3e3;padding:.4em 1em;font-size:.8em}
@media (max-width:1000px){.side{grid-template-columns:1fr}}
p.note{font-size:.8em;color:#555;margin:.2em 0 1em}
figure{margin:1em 0}figcaption{font-size:.8em;color:#555}
img.plot{max-width:100%;height:auto;border:1px solid #eee}
.failed{color:#a00}#status{font-size:.75em;color:#888}
"""

SCRIPT = """
<script>
(function(){
  var root=document.documentElement; root.setAttribute('data-js-errors','0');
  window.addEventListener('error',function(){root.setAttribute('data-js-errors',
    String(parseInt(root.getAttribute('data-js-errors'))+1));},true);
  window.addEventListener('load',function(){
    var imgs=document.querySelectorAll('img.plot'), ok=0;
    for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
    var tables=document.querySelectorAll('table.leaderboard').length;
    root.setAttribute('data-plots',String(imgs.length)); root.setAttribute('data-plots-ok',String(ok));
    root.setAttribute('data-tables',String(tables)); root.setAttribute('data-loaded','1');
    var s=document.getElementById('status'); if(s){s.textContent='page loaded: '+tables+' tables, '+ok+'/'+imgs.length+' plots rendered';}
  });
})();
</script>
"""


def _figure(b64: Optional[str], caption: str, name: str) -> str:
    if not b64:
        return ""
    return (f'<figure><img class="plot" data-plot="{html.escape(name)}" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _protocol_html(proto: Dict[str, Dict[str, str]], versions: Dict[str, str]) -> str:
    out = ["<h2>Protocol</h2>"]
    for ds, info in proto.items():
        out.append(f"<h3>{html.escape(ds)}</h3><table class=\"protocol\">")
        out += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in info.items()]
        out.append("</table>")
    out.append('<h3>Software</h3><table class="protocol">')
    out += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in versions.items()]
    out.append("</table>")
    return "\n".join(out)


def _protocol_md(proto, versions) -> str:
    lines = ["## Protocol", ""]
    for ds, info in proto.items():
        lines += [f"**{ds}**", ""] + [f"- {k}: {v}" for k, v in info.items()] + [""]
    lines += ["**Software**: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


def build(out: str, title: str = "MLA leaderboard") -> dict:
    """Write every report into ``out``; returns the tables and paths."""
    runs = load_runs(out)
    failures = load_failures(out)
    frame = tidy(runs, out)
    gaps = gap_frame(runs, out)
    t1, t3, t2s, tg, tp = table1(runs), table3(runs), table2(runs), gap_table(runs), paper_table1(runs)
    versions = package_versions()
    proto = protocol(runs, out) if runs else {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")

    # Markdown
    md = [f"# {title}", "", f"{len(runs)} finished runs, generated {stamp}. Test accuracy (%), "
          "mean ± std over seeds; best **bold**, second <ins>underlined</ins>.", ""]
    for t in [t1, *t2s, t3, tg, tp]:
        if t is not None:
            md += [to_markdown(t), ""]
    if failures:
        md += ["## Failed runs", ""] + [f"- {f['run_dir']} (exit {f.get('returncode')}): see run.log" for f in failures] + [""]
    md.append(_protocol_md(proto, versions))

    # HTML
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{len(runs)} finished runs, generated {html.escape(stamp)}. Test accuracy (%), mean ± "
            "sample std over seeds; per row the best is <b>bold</b>, the second <u>underlined</u>. "
            "Raw numbers: <code>leaderboard.csv</code>.</p>", '<p id="status"></p>']
    if failures:
        body.append('<p class="failed">Failed runs: ' + ", ".join(html.escape(f["run_dir"]) for f in failures) + "</p>")
    # Table 1 across the page; below it the bar chart with the protocol beside it.
    body.append(to_html(t1) if t1 is not None else "<p>No finished runs yet.</p>")
    body.append('<div class="side"><div>')
    if t1 is not None:
        body.append(_figure(bar_chart(t1), "Multi (fused) test accuracy per method, ± std over seeds", "bars"))
    body.append("</div><aside>" + _protocol_html(proto, versions) + "</aside></div>")
    if t1 is not None:
        body.append("<h2>Per-modality accuracy (modality laziness)</h2>")
        for ds in dict.fromkeys(k[0] for k in t1.means.index):
            body.append(_figure(laziness_chart(t1, ds), f"{ds}: unimodal accuracy of each modality and "
                                "Multi, per method", f"laziness-{ds}"))
    for t in t2s:
        body += ["<h2>Missing modalities</h2>", to_html(t), _figure(missing_rate_plot(t), t.title, "missing")]
    if t3 is not None:
        body += ["<h2>Ablation</h2>", to_html(t3)]
    if tg is not None:
        body += ["<h2>Modality gap</h2>", to_html(tg), _figure(gap_plot(tg), tg.title, "gap")]
    if tp is not None:
        body += ["<h2>Reference</h2>", to_html(tp)]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>{SCRIPT}</head><body>\n"
            + "\n".join(b for b in body if b) + "\n</body></html>\n")

    paths = {name: os.path.join(out, name) for name in
             ("leaderboard.md", "leaderboard.csv", "modality_gap.csv", "index.html")}
    atomic_write_text("\n".join(md).rstrip("\n") + "\n", paths["leaderboard.md"])
    atomic_write_text(frame.to_csv(index=False), paths["leaderboard.csv"])
    atomic_write_text(gaps.to_csv(index=False), paths["modality_gap.csv"])
    atomic_write_text(page, paths["index.html"])
    return {"runs": runs, "failures": failures, "table1": t1, "table2": t2s, "table3": t3,
            "gap": tg, "paths": paths}
