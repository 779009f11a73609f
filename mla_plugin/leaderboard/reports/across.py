"""Across datasets (Demšar 2006): each method's average rank over the datasets of Table 1
(Multi, mean over seeds), Friedman's test, Nemenyi's post-hoc and the critical-difference
diagram (scikit-posthocs draws it).  Needs two or more datasets and three or more methods
run on every one of them; otherwise :func:`across_datasets` says why."""

from __future__ import annotations

import math

import pandas as pd

from mla_plugin.leaderboard.reports import plots
from mla_plugin.leaderboard.reports.significance import (
    ALPHA,
    average_ranks,
    critical_difference,
    friedman,
    nemenyi,
)
from mla_plugin.leaderboard.reports.table import Table

NEEDS_TWO = (
    "The across-dataset comparison (average ranks, Friedman test, critical-difference "
    "diagram) needs two or more datasets; this leaderboard has {n}."
)


def multi_scores(table: Table | None, references=()) -> pd.DataFrame:
    """Table 1's Multi rows as datasets × methods (mean test accuracy %); reference columns
    left out."""
    if table is None:
        return pd.DataFrame()
    multi = [k for k in table.means.index if k[1] == "Multi"]
    frame = table.means.loc[multi, [c for c in table.means.columns if c not in references]]
    frame.index = [k[0] for k in multi]
    return frame.astype(float)


def across_datasets(table: Table | None, references=()) -> dict:
    """``{"reason": str}`` when the comparison cannot be made, else the scores, ``ranks``
    (best first), ``friedman`` (statistic, p), ``nemenyi`` (p-values), ``cd`` and
    ``dropped`` (methods not run on every dataset, left out)."""
    scores = multi_scores(table, references)
    if len(scores) < 2:
        return {"reason": NEEDS_TWO.format(n=len(scores) if len(scores) else "none")}
    complete = scores.dropna(axis=1)
    dropped = [c for c in scores.columns if c not in complete.columns]
    if complete.shape[1] < 3:
        return {
            "reason": "The across-dataset comparison needs three or more methods run on "
            f"every dataset; {complete.shape[1]} are."
        }
    k, n = complete.shape[1], complete.shape[0]
    return {
        "scores": complete,
        "ranks": average_ranks(complete),
        "friedman": friedman(complete),
        "nemenyi": nemenyi(complete),
        "cd": critical_difference(k, n),
        "dropped": dropped,
    }


def summary(result: dict) -> str:
    """One paragraph: Friedman's verdict, the CD and which pairs Nemenyi separates."""
    if "reason" in result:
        return result["reason"]
    stat, p = result["friedman"]
    ranks, pv = result["ranks"], result["nemenyi"]
    n, k = result["scores"].shape
    verdict = "rejects" if p < ALPHA else "does not reject"
    text = (
        f"{n} datasets, {k} methods. Friedman's test {verdict} that all methods rank alike "
        f"(χ²_F = {stat:.2f}, p = {p:.3g}). Nemenyi's critical difference at α = {ALPHA:g} "
        f"is {result['cd']:.2f} ranks"
    )
    names = list(ranks.index)
    separated = [
        f"{a} > {b}" for i, a in enumerate(names) for b in names[i + 1 :] if pv.loc[a, b] < ALPHA
    ]
    text += (
        "; it separates " + ", ".join(separated) + "."
        if separated
        else "; no pair of methods differs by more (a bar joins the methods it cannot separate)."
    )
    if n < 5:
        text += (
            f" With {n} datasets the test has little power: read the ranks, not the absence "
            "of significance."
        )
    if result["dropped"]:
        text += f" Left out (not run on every dataset): {', '.join(result['dropped'])}."
    return text


def rank_table(result: dict) -> Table | None:
    """Average ranks as a one-row table (best first); None without a comparison."""
    if "reason" in result:
        return None
    ranks = result["ranks"]
    frame = pd.DataFrame([ranks.to_numpy()], index=["Average rank"], columns=list(ranks.index))
    nan = pd.DataFrame(math.nan, index=frame.index, columns=frame.columns)
    table = Table(
        "Average rank across datasets (1 = best; Multi test accuracy)",
        frame,
        nan,
        pd.DataFrame(len(result["scores"]), index=frame.index, columns=frame.columns),
        mark_axis=None,
        note=summary(result),
    )
    return table


def cd_diagram(result: dict) -> str | None:
    """The critical-difference diagram as a base64 PNG (scikit-posthocs'
    ``critical_difference_diagram``: methods at their average rank, a bar joining those
    Nemenyi does not separate, the CD drawn to scale); None without a comparison."""
    if "reason" in result:
        return None
    import scikit_posthocs

    plt = plots._plt()
    k = len(result["ranks"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.25 * k))
    scikit_posthocs.critical_difference_diagram(
        result["ranks"],
        result["nemenyi"],
        ax=ax,
        alpha=ALPHA,
        cd=result["cd"],
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
    )
    ax.set_title(
        f"Critical difference (Nemenyi, α = {ALPHA:g}) over {len(result['scores'])} datasets",
        fontsize=10,
        pad=22,  # above the CD bar's label
    )
    return plots._png(fig)
