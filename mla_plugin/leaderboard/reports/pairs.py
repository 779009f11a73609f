"""Paired tests within a dataset: every pair of Table 1's methods compared on the same test
samples (each run's ``test_predictions.npz``), pooled over the seeds both ran, per Table 1
row (each modality and Multi): the accuracy difference with a paired bootstrap 95 %
interval, an exact McNemar test and Holm's correction over the row's pairs.  From them,
Table 1's "tied with the best" mark (:data:`TIE_MARK`) and the seeds line per dataset."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from mla_plugin.leaderboard.methods import (
    REFERENCES,
    TEST_SELECTED_MARK,
    dataset_label,
    variant_label,
    variant_order,
)
from mla_plugin.leaderboard.reports.frames import _modality_rows, base_rate, datasets, row_label
from mla_plugin.leaderboard.reports.significance import (
    ALPHA,
    bootstrap_interval,
    holm,
    mcnemar_exact,
)
from mla_plugin.leaderboard.reports.table import Table

TIE_MARK = "≈"
NO_PAIRED_TEST = "no paired test"
COLUMNS = [
    "dataset",
    "row",
    "a",
    "b",
    "seeds",
    "pairs",
    "accuracy_a",
    "accuracy_b",
    "difference",
    "ci_low",
    "ci_high",
    "a_only",
    "b_only",
    "p",
    "p_holm",
]


def table1_runs(runs) -> list[dict]:
    """The runs Table 1 ranks: the methods (no references, no ablation variants, no
    training masks) at the base missing rate."""
    plain = [r for r in runs if not r.get("train_mask")]
    rate = base_rate(plain)
    return [
        r
        for r in plain
        if r["missing_rate"] == rate
        and r["variant"] == r["method"]
        and r["method"] not in REFERENCES
    ]


def _correct(predictions: dict, row: str):
    """(index, label, correct) of one run on one Table 1 row: Multi (every sample) or a
    modality (the samples where it is present); None when the run has no prediction."""
    if row == "multi":
        keep = np.ones(len(predictions["index"]), bool)
        predicted = predictions["prediction"]
    elif f"prediction_{row}" in predictions:
        keep, predicted = predictions[f"present_{row}"], predictions[f"prediction_{row}"]
    else:
        return None
    label = predictions["label"][keep]
    return predictions["index"][keep], label, predicted[keep] == label


def _load(path: str) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _pair(a: dict, b: dict):
    """Pool two methods' per-seed (index, label, correct, file) over the seeds and test samples
    both scored: per sample its summed difference and count, and the 2×2 table's
    discordant cells.  A label that differs on one index is an error (not the same test
    set)."""
    indexes, differences = [], []
    right = {"a": 0, "b": 0, "a_only": 0, "b_only": 0}
    seeds = sorted(set(a) & set(b))
    for seed in seeds:
        (ia, la, ca, fa), (ib, lb, cb, fb) = a[seed], b[seed]
        common, pa, pb = np.intersect1d(ia, ib, return_indices=True)
        if not np.array_equal(la[pa], lb[pb]):
            first = common[np.flatnonzero(la[pa] != lb[pb])[0]]
            raise ValueError(
                f"{fa} and {fb}: the test labels differ at index {first}, so the two runs "
                "did not score the same test set; rerun one of them"
            )
        ca, cb = ca[pa].astype(int), cb[pb].astype(int)
        indexes.append(common)
        differences.append(ca - cb)
        right["a"] += int(ca.sum())
        right["b"] += int(cb.sum())
        right["a_only"] += int((ca > cb).sum())
        right["b_only"] += int((cb > ca).sum())
    if not seeds:
        return seeds, np.zeros(0), np.zeros(0), right
    _, unit = np.unique(np.concatenate(indexes), return_inverse=True)  # one unit per sample
    diff = np.bincount(unit, weights=np.concatenate(differences))
    return seeds, diff, np.bincount(unit), right


def paired_tests(runs) -> pd.DataFrame:
    """One row per pair of Table 1's methods per dataset × Table 1 row (``multi`` or a
    modality): accuracies over the paired samples, their difference (a - b, points) with a
    paired bootstrap interval, the McNemar counts and p, and Holm's p over the row's pairs.
    A pair with a method whose runs kept no predictions has NaN statistics (no paired
    test)."""
    runs = table1_runs(runs)
    out = []
    for ds in datasets(runs):
        mine = [r for r in runs if r["dataset"] == ds]
        variants = variant_order({r["variant"] for r in mine})  # Table 1's column order
        loaded = {id(r): _load(r["predictions"]) for r in mine if r.get("predictions") is not None}
        for row in _modality_rows(mine, ds):
            scored = {}
            for v in variants:
                per_seed = {}
                for r in mine:
                    if r["variant"] == v and id(r) in loaded:
                        found = _correct(loaded[id(r)], row)
                        if found is not None:
                            per_seed[r["seed"]] = (*found, r["predictions"])
                predicts = any(r["variant"] == v and r["test"].get(row) is not None for r in mine)
                if predicts:  # None: the runs kept no predictions
                    scored[v] = per_seed or None
            rows = []
            for a, b in itertools.combinations(list(scored), 2):
                record = {"dataset": ds, "row": row, "a": a, "b": b}
                if scored[a] is not None and scored[b] is not None:
                    seeds, diff, count, right = _pair(scored[a], scored[b])
                    n = int(count.sum())
                    low, high = bootstrap_interval(diff, count) if n else (math.nan, math.nan)
                    record.update(
                        seeds=len(seeds),
                        pairs=n,
                        accuracy_a=100 * right["a"] / n if n else math.nan,
                        accuracy_b=100 * right["b"] / n if n else math.nan,
                        difference=100 * diff.sum() / n if n else math.nan,
                        ci_low=100 * low,
                        ci_high=100 * high,
                        a_only=right["a_only"],
                        b_only=right["b_only"],
                        p=mcnemar_exact(right["a_only"], right["b_only"]) if n else math.nan,
                    )
                rows.append(record)
            frame = pd.DataFrame(rows, columns=COLUMNS[:-1])
            tested = frame["p"].notna()
            frame["p_holm"] = math.nan
            if tested.any():
                frame.loc[tested, "p_holm"] = holm(frame.loc[tested, "p"].to_numpy(float))
            out.append(frame)
    if not out:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(out, ignore_index=True)


def untested(pairs: pd.DataFrame, dataset: str, row: str = "multi") -> list[str]:
    """The variants of a Table 1 row whose runs kept no predictions."""
    frame = pairs[(pairs["dataset"] == dataset) & (pairs["row"] == row)]
    missing = frame[frame["p"].isna()]
    names = list(dict.fromkeys([*missing["a"], *missing["b"]]))
    tested = set(frame.loc[frame["p"].notna(), "a"]) | set(frame.loc[frame["p"].notna(), "b"])
    return [v for v in names if v not in tested]


def _p_holm(pairs: pd.DataFrame, a: str, b: str) -> float:
    match = pairs[((pairs["a"] == a) & (pairs["b"] == b)) | ((pairs["a"] == b) & (pairs["b"] == a))]
    return float(match["p_holm"].iloc[0]) if len(match) else math.nan


def mark_ties(table: Table, runs, pairs: pd.DataFrame) -> None:
    """Add :data:`TIE_MARK` to each of Table 1's method cells (not best, not at chance) that
    no paired test separates from a best cell of its row (Holm-adjusted McNemar p >=
    :data:`ALPHA` against a best), and a legend line."""
    keys = {
        (dataset_label(ds), row_label(m)): (ds, m)
        for ds in datasets(runs)
        for m in _modality_rows(runs, ds)
    }
    labels = {variant_label(r["variant"]): r["variant"] for r in table1_runs(runs)}
    ties = pd.DataFrame("", index=table.means.index, columns=table.means.columns)
    for i, key in enumerate(table.means.index):
        ds, row = keys.get(tuple(key), (None, None))
        mine = pairs[(pairs["dataset"] == ds) & (pairs["row"] == row)]
        best = [c for c in table.means.columns if table.marks.at[key, c] == "best" and c in labels]
        for c in table.means.columns:
            if c not in labels or table.marks.at[key, c] in ("best", "chance") or not best:
                continue
            if TEST_SELECTED_MARK in c:  # not ranked, so not tied either
                continue
            p = [_p_holm(mine, labels[b], labels[c]) for b in best]
            if any(v >= ALPHA for v in p if not math.isnan(v)):
                ties.iat[i, table.means.columns.get_loc(c)] = TIE_MARK
    table.suffix = ties
    missing = {variant_label(v) for ds in pairs["dataset"].unique() for v in untested(pairs, ds)}
    legend = (
        f"{TIE_MARK} tied with the best: the paired test on the same test samples (exact "
        f"McNemar, pooled over seeds, Holm-corrected over the row's pairs) does not separate "
        f"it from the bold cell at α = {ALPHA:g}."
    )
    if missing:
        names = ", ".join(sorted(missing))
        legend += f" {NO_PAIRED_TEST.capitalize()} (runs without test predictions): {names}."
    table.extra_legends = [*table.extra_legends, legend]


def _larger(*stds: float) -> float:
    """The larger of the known stds (NaN for one seed); NaN when none is known."""
    return max((s for s in stds if not math.isnan(s)), default=math.nan)


def seed_lines(table: Table, references=()) -> list[str]:
    """Per dataset, from Table 1's Multi row: each method's seed-to-seed std and the
    methods whose distance to the best mean is smaller than the larger of the two seed
    stds (more seeds are needed to tell them apart by their means); ``references``
    (column labels) left out."""
    lines = []
    for key in table.means.index:
        if key[1] != "Multi":
            continue
        means, stds, counts = table.means.loc[key], table.stds.loc[key], table.counts.loc[key]
        methods = [c for c in means.index if c not in references and not math.isnan(means[c])]
        best = [c for c in methods if table.marks.at[key, c] == "best"]
        spread = ", ".join(
            f"{c} {stds[c]:.2f}" if not math.isnan(stds[c]) else f"{c} –" for c in methods
        )
        seeds = sorted({int(counts[c]) for c in methods})
        plural = "s" if seeds != [1] else ""
        text = f"{key[0]}: seed std of Multi ({'/'.join(map(str, seeds))} seed{plural}): {spread}."
        if best:
            b, named = best[0], " and ".join(best)  # bests share the displayed mean
            close = [
                c
                for c in methods
                if c not in best
                and TEST_SELECTED_MARK not in c  # a test-selected column is not ranked
                and table.marks.at[key, c] != "chance"
                and means[b] - means[c] < _larger(stds[b], stds[c])
            ]
            if close:
                text += (
                    f" {', '.join(close)} trail{'s' if len(close) == 1 else ''} the best "
                    f"({named}) by less than a seed std: {max(seeds)} seeds are too few to "
                    "separate them by their means (see the paired tests)."
                )
            else:
                text += f" Every other method trails the best ({named}) by more than a seed std."
        lines.append(text)
    return lines
