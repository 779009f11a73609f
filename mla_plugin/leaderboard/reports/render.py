"""``index.html``: the leaderboard's tables, plots and protocol on one self-contained page
(the CSS inlined, the plots as base64 PNGs, no script, nothing loaded from elsewhere),
rendered with Jinja2 (autoescaped) from ``templates/index.html.j2`` and ``templates/report.css``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources

import jinja2
import pandas as pd
from markupsafe import Markup

from mla_plugin.leaderboard.reports import plots
from mla_plugin.leaderboard.reports.table import CHANCE_MARK, Table

PACKAGE = "mla_plugin.leaderboard.reports"


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def css() -> str:
    return resources.files(PACKAGE).joinpath("templates", "report.css").read_text(encoding="utf-8")


def table_view(table: Table) -> dict:
    """What the ``table`` macro shows: header names, then per row its header cells
    (``(text, rowspan)``; a dataset spans its rows, ``rowspan`` None for a plain cell,
    continued rows omit it) and its value cells (``(text, mark)``; a cell at chance carries
    its marker), and the chance legend ("" when the table has no chance rates)."""
    index = table.means.index
    grouped = isinstance(index, pd.MultiIndex)
    spans: dict[int, int] = {}
    if grouped:
        firsts = [k[0] for k in index]
        start = 0
        for i in range(1, len(firsts) + 1):
            if i == len(firsts) or firsts[i] != firsts[start]:
                spans[start] = i - start
                start = i
    rows = []
    for i in range(len(table.means)):
        keys = table.index_cells(i)
        if grouped:
            heads = ([(keys[0], spans[i])] if i in spans else []) + [(k, None) for k in keys[1:]]
        else:
            heads = [(k, None) for k in keys]
        cells = []
        for j in range(len(table.means.columns)):
            text, mark = table.cell(i, j), table.marks.iat[i, j]
            cells.append((f"{text} {CHANCE_MARK}" if mark == "chance" else text, mark))
        rows.append({"heads": heads, "cells": cells})
    return {
        "title": table.title,
        "note": table.note,
        "legend": table.legends(),
        "legends": table.extra_legends,
        "names": [n or "" for n in index.names],
        "columns": [str(c) for c in table.means.columns],
        "rows": rows,
    }


def differences_view(section) -> dict:
    """What ``differences.html.j2`` shows of a :class:`~.differences.Section`."""
    from mla_plugin.leaderboard.reports import across, differences

    rows = section.pairwise_rows()
    return {
        "header": differences.PAIRWISE_HEADER,
        "rows": rows,
        "note": section.note(rows),
        "heat_maps": section.heat_maps,
        "seeds": section.seeds,
        "seeds_note": section.seeds_note(),
        "ranks": None if section.ranks is None else table_view(section.ranks),
        "across": across.summary(section.across),
        "cd": section.cd_png,
    }


def table_html(table: Table) -> str:
    """One table as the page shows it (the ``table`` macro of ``macros.html.j2``)."""
    return str(environment().get_template("macros.html.j2").module.table(table_view(table)))


def page(
    title: str,
    stamp: str,
    n_runs: int,
    failures: Sequence[dict],
    table1: Table | None,
    table2: list[Table],
    table3: Table | None,
    gap: Table | None,
    reference: Table | None,
    protocol: dict[str, dict[str, str]],
    versions: dict[str, str],
    figure2: Sequence[Table] = (),
    checks: Table | None = None,
    differences=None,
    selection: Table | None = None,
) -> str:
    """The whole page; plots are drawn here, from the tables."""
    figures = {"bars": None, "laziness": [], "gap": None}
    if table1 is not None:
        figures["bars"] = plots.bar_chart(table1)
        figures["laziness"] = [
            (ds, plots.laziness_chart(table1, ds))
            for ds in dict.fromkeys(k[0] for k in table1.means.index)
        ]
    missing = [(table_view(t), plots.missing_rate_plot(t)) for t in table2]
    if gap is not None:
        figures["gap"] = plots.gap_plot(gap)
    isolation = [(table_view(t), plots.figure2_plot(t)) for t in figure2]

    def view(t):
        return None if t is None else table_view(t)

    return (
        environment()
        .get_template("index.html.j2")
        .render(
            title=title,
            stamp=stamp,
            n_runs=n_runs,
            failures=[f["run_dir"] for f in failures],
            css=Markup(css()),
            table1=view(table1),
            table2=missing,
            table3=view(table3),
            checks=view(checks),
            selection=view(selection),
            gap=view(gap),
            figure2=isolation,
            reference=view(reference),
            differences=None if differences is None else differences_view(differences),
            figures=figures,
            protocol=protocol,
            versions=versions,
        )
    )
