"""The leaderboard's table: :class:`Table` (means, stds, counts and chance rates with row and
column labels), :func:`summarise` (one ``groupby`` per table), :func:`mark_best` (best and
second per row or column, among the cells above chance) and :func:`to_markdown`.

Chance is the majority-class rate of the test split, as the trainer writes it into
``metrics.json`` (``majority.test.rate``: the share of the samples each accuracy counts
that belong to the split's most frequent class), averaged over the same runs as the
accuracy.  A cell is *at chance* when its mean accuracy is not above that rate by more
than :data:`CHANCE_TOLERANCE` percentage points (below it counts too); such a cell is
never marked best or second, and is shown with :data:`CHANCE_MARK`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mla_plugin.leaderboard.methods import TEST_SELECTED_LEGEND, TEST_SELECTED_MARK


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
        # text after a cell's value (e.g. pairs.TIE_MARK) and lines under the table
        self.suffix = pd.DataFrame("", index=means.index, columns=means.columns)
        self.extra_legends: list[str] = []
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
        suffix = self.suffix.iat[i, j]
        return f"{text} {suffix}" if suffix else text

    def index_cells(self, i: int) -> list[str]:
        key = self.means.index[i]
        return [str(k) for k in key] if isinstance(key, tuple) else [str(key)]

    def selection_legend(self) -> str:
        """The line that says a label with :data:`TEST_SELECTED_MARK` is a test-selected
        (unfair) cell; "" when no row or column has one."""
        labels = [str(c) for c in self.means.columns]
        labels += [str(k) for key in self.means.index for k in np.atleast_1d(key)]
        return TEST_SELECTED_LEGEND if any(TEST_SELECTED_MARK in x for x in labels) else ""

    def legends(self) -> str:
        """The chance legend and the selection legend, one line ("" for neither)."""
        return " ".join(x for x in (self.chance_legend(), self.selection_legend()) if x)

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
    legend = table.legends()
    if legend:
        lines += ["", f"_{legend}_"]
    for line in table.extra_legends:
        lines += ["", f"_{line}_"]
    return "\n".join(lines) + "\n"
