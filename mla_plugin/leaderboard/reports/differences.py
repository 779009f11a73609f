""" "Which differences are real", as one section of the reports: Table 1's tie marks
(:mod:`~.pairs`), the pairwise tests of each dataset's Multi row as a table and a heat map,
the seeds line per dataset, and the across-dataset ranks with Friedman's test and the
critical-difference diagram (:mod:`~.across`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from mla_plugin.leaderboard.methods import (
    REFERENCES,
    TEST_SELECTED_LEGEND,
    TEST_SELECTED_MARK,
    dataset_label,
    variant_label,
)
from mla_plugin.leaderboard.reports import across, pairs, plots
from mla_plugin.leaderboard.reports.significance import ALPHA
from mla_plugin.leaderboard.reports.table import Table, to_markdown

PAIRWISE_HEADER = [
    "Data",
    "A",
    "B",
    "seeds",
    "paired samples",
    "A − B (points)",
    "95 % CI",
    "A only / B only",
    "p (McNemar)",
    "p (Holm)",
]


@dataclasses.dataclass
class Section:
    pairs: pd.DataFrame  # every pair of every Table 1 row (pairs.paired_tests)
    seeds: list[str]  # one line per dataset
    across: dict  # across.across_datasets
    ranks: Table | None
    heat_maps: list  # (dataset label, base64 PNG)
    cd_png: str | None

    def pairwise_rows(self) -> list[list[str]]:
        """The Multi rows' pairs as display text (:data:`PAIRWISE_HEADER`)."""
        out = []
        multi = self.pairs[self.pairs["row"] == "multi"]
        for r in multi.itertuples():
            names = [dataset_label(r.dataset), variant_label(r.a), variant_label(r.b)]
            if math.isnan(r.p):
                continue  # listed once per dataset, below
            star = " *" if r.p_holm < ALPHA else ""
            out.append(
                names
                + [
                    str(int(r.seeds)),
                    str(int(r.pairs)),
                    f"{r.difference:+.2f}{star}",
                    f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
                    f"{int(r.a_only)} / {int(r.b_only)}",
                    f"{r.p:.3g}",
                    f"{r.p_holm:.3g}",
                ]
            )
        for ds in multi["dataset"].unique():
            untested = pairs.untested(self.pairs, ds)
            if untested:
                names = ", ".join(variant_label(v) for v in untested)
                out.append([dataset_label(ds), names, "(any)", pairs.NO_PAIRED_TEST] + [""] * 6)
        return out

    def note(self, rows) -> str:
        """The pairwise table's note, with the test-selection legend when a row names a
        test-selected cell (such a cell is never shown without it)."""
        marked = any(TEST_SELECTED_MARK in cell for row in rows for cell in row)
        return PAIRWISE_NOTE + (f" {TEST_SELECTED_LEGEND}" if marked else "")

    def seeds_note(self) -> str:
        """The test-selection legend under the seeds lines when one names such a cell."""
        return TEST_SELECTED_LEGEND if any(TEST_SELECTED_MARK in x for x in self.seeds) else ""

    def markdown(self) -> str:
        lines = ["## Which differences are real", ""]
        rows = self.pairwise_rows()
        if rows:
            lines += [
                "### Paired tests (Multi, test samples pooled over seeds)",
                "",
                "| " + " | ".join(PAIRWISE_HEADER) + " |",
                "|" + "|".join(["---"] * 3 + ["---:"] * 7) + "|",
                *["| " + " | ".join(r) + " |" for r in rows],
                "",
                f"_{self.note(rows)}_",
                "",
            ]
        if self.seeds:
            lines += ["### Seeds", "", *[f"- {line}" for line in self.seeds], ""]
            if self.seeds_note():
                lines += [f"_{self.seeds_note()}_", ""]
        if self.ranks is not None:
            lines.append(to_markdown(self.ranks))
        else:
            lines += ["### Across datasets", "", across.summary(self.across), ""]
        return "\n".join(lines).rstrip("\n") + "\n"


PAIRWISE_NOTE = (
    "Each pair compared on the same test samples, the seeds both ran pooled; A − B the "
    "accuracy difference over those pairs with a paired bootstrap 95 % interval (test samples "
    "resampled, seeded); A only / B only the samples only one got right (McNemar's discordant "
    f"cells); p the exact McNemar test, Holm-corrected over the row's pairs; * Holm p < {ALPHA:g}."
)


def heat_map(frame: pd.DataFrame) -> str | None:
    """The pairwise accuracy differences of one dataset's Multi row (row method minus column
    method, points), * where Holm's p < α; a base64 PNG."""
    tested = frame[frame["p"].notna()]
    if tested.empty:
        return None
    names = list(dict.fromkeys([*frame["a"], *frame["b"]]))
    k = len(names)
    diff, star = np.full((k, k), np.nan), np.full((k, k), "", dtype=object)
    for r in tested.itertuples():
        i, j = names.index(r.a), names.index(r.b)
        diff[i, j], diff[j, i] = r.difference, -r.difference
        star[i, j] = star[j, i] = "*" if r.p_holm < ALPHA else ""
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * k, 0.9 + 0.7 * k))
    bound = max(1.0, float(np.nanmax(np.abs(diff))))
    image = ax.imshow(diff, cmap="RdBu", vmin=-bound, vmax=bound)
    labels = [variant_label(n) for n in names]
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    for i in range(k):
        for j in range(k):
            if not np.isnan(diff[i, j]):
                shown = round(diff[i, j], 1) or 0.0  # no "-0.0"
                dark = abs(diff[i, j]) > 0.6 * bound
                ax.text(
                    j,
                    i,
                    f"{shown:+.1f}{star[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
    fig.colorbar(image, ax=ax, label="row − column (points)")
    return plots._png(fig)


def section(runs, table1: Table | None) -> Section:
    """The section for these runs (all of them: Table 1's are chosen here), with Table 1's
    tie marks added to ``table1``."""
    found = pairs.paired_tests(runs)
    if table1 is not None:
        pairs.mark_ties(table1, runs, found)
    refs = [variant_label(v) for v in REFERENCES]
    result = across.across_datasets(table1, refs)
    maps = []
    for ds in found["dataset"].unique():
        png = heat_map(found[(found["dataset"] == ds) & (found["row"] == "multi")])
        if png is not None:
            maps.append((dataset_label(ds), png))
    return Section(
        pairs=found,
        seeds=pairs.seed_lines(table1, refs) if table1 is not None else [],
        across=result,
        ranks=across.rank_table(result),
        heat_maps=maps,
        cd_png=across.cd_diagram(result),
    )
