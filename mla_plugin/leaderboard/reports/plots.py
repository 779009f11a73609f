"""The leaderboard's plots (matplotlib, Agg), each returned as a base64 PNG for the
self-contained page:

- :func:`bar_chart`: Multi accuracy per method, one panel per dataset (Table 1);
- :func:`laziness_chart`: each modality's accuracy beside Multi, one panel per method;
- :func:`missing_rate_plot`: Multi against the missing rate η (Table 2);
- :func:`gap_plot`: the modality gap per method;
- :func:`figure2_plot`: each modality's accuracy against a training-only mask (Figure 2).

Every axis starts at 0, so bar heights and distances compare honestly; where the runs
recorded it, a dashed line marks chance (the test split's majority-class rate).
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np

from mla_plugin.leaderboard.reports.table import Table


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


def _chance_line(ax, chance) -> bool:
    """A dashed line at the majority-class rate (the mean of ``chance``'s finite values);
    whether there was one to draw."""
    values = np.asarray(chance, float)
    values = values[np.isfinite(values)]
    if len(values):
        ax.axhline(values.mean(), color="#888888", linestyle="--", linewidth=1, label="chance")
    return bool(len(values))


def _accuracy_axis(ax, tops) -> None:
    """The accuracy axis from 0 to a little above the highest bar/point (at most 100)."""
    tops = np.asarray(tops, float)
    tops = tops[np.isfinite(tops)]
    ax.set_ylim(0, min(100, tops.max() + 5) if len(tops) else 100)


def bar_chart(table: Table) -> str | None:
    """Multi accuracy per method, one panel per dataset, ± std error bars."""
    plt = _plt()
    multi = [i for i, k in enumerate(table.means.index) if k[1] == "Multi"]
    if not multi:
        return None
    fig, axes = plt.subplots(
        1,
        len(multi),
        figsize=(max(4.5, 0.7 * len(table.means.columns) + 1.5) * len(multi), 3.6),
        squeeze=False,
    )
    for ax, i in zip(axes[0], multi, strict=False):
        m, s = (
            table.means.iloc[i].to_numpy(float),
            np.nan_to_num(table.stds.iloc[i].to_numpy(float)),
        )
        x = np.arange(len(m))
        colors = ["#c0392b" if c == "MLA" else "#5b7fa6" for c in table.means.columns]
        ax.bar(x, m, yerr=s, capsize=3, color=colors)
        ax.set_xticks(x, list(table.means.columns), rotation=35, ha="right")
        ax.set_title(f"{table.means.index[i][0]}: Multi")
        ax.set_ylabel("test accuracy (%)")
        if _chance_line(ax, table.chance.iloc[i]):
            ax.legend(fontsize=7, loc="lower right")
        _accuracy_axis(ax, m + s)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def laziness_chart(table: Table, dataset_label: str) -> str | None:
    """One panel per method: each modality's unimodal accuracy beside Multi."""
    plt = _plt()
    rows = [i for i, k in enumerate(table.means.index) if k[0] == dataset_label]
    if not rows:
        return None
    methods = list(table.means.columns)
    ncol = min(4, len(methods))
    nrow = math.ceil(len(methods) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(3.1 * ncol, 2.6 * nrow), squeeze=False, sharey=True
    )
    labels = [table.means.index[i][1] for i in rows]
    palette = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860"]
    colors = [
        ("#333333" if lab == "Multi" else palette[k % len(palette)]) for k, lab in enumerate(labels)
    ]
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
        _chance_line(ax, [table.chance.iat[i, j] for i in rows])
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    for j in range(len(methods), nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    axes[0][0].set_ylabel("test accuracy (%)")
    fig.suptitle(
        f"{dataset_label}: per-modality accuracy (a lazy modality is far below the others)",
        fontsize=10,
    )
    fig.tight_layout()
    return _png(fig)


def missing_rate_plot(table: Table) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    rates = [float(c.split("=")[1].rstrip("%")) for c in table.means.columns]
    for i, method in enumerate(table.means.index):
        m, s = (
            table.means.iloc[i].to_numpy(float),
            np.nan_to_num(table.stds.iloc[i].to_numpy(float)),
        )
        ax.errorbar(
            rates,
            m,
            yerr=s,
            marker="o",
            capsize=3,
            label=method,
            linewidth=2.5 if method == "MLA" else 1.2,
        )
    _chance_line(ax, table.chance.to_numpy(float).ravel())
    _accuracy_axis(ax, (table.means + table.stds.fillna(0)).to_numpy(float).ravel())
    ax.set_xlabel("missing rate η (%)")
    ax.set_ylabel("Multi test accuracy (%)")
    ax.set_title(table.title.split(",")[0].replace("Table 2: ", ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _png(fig)


def gap_plot(table: Table) -> str:
    plt = _plt()
    n = len(table.means.index)
    fig, axes = plt.subplots(
        1, n, figsize=(max(3.5, 0.8 * len(table.means.columns) + 1.5) * n, 3.4), squeeze=False
    )
    for ax, i in zip(axes[0], range(n), strict=False):
        m, s = (
            table.means.iloc[i].to_numpy(float),
            np.nan_to_num(table.stds.iloc[i].to_numpy(float)),
        )
        x = np.arange(len(m))
        ax.bar(
            x,
            np.nan_to_num(m),
            yerr=s,
            capsize=3,
            color=["#c0392b" if c == "MLA" else "#5b7fa6" for c in table.means.columns],
        )
        ax.set_xticks(x, list(table.means.columns), rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("modality gap")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{table.means.index[i]}: modality gap (test)")
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def figure2_plot(table: Table) -> str:
    """Figure 2 from :func:`~mla_plugin.leaderboard.reports.table2.figure2`'s table: one row of
    panels per masked modality, one panel per evaluated modality (and Multi); x the
    masking ratio (%), one line per method (mean over seeds) with a ± std band."""
    plt = _plt()
    index = table.means.index
    masked = list(dict.fromkeys(k[0] for k in index))
    methods = list(dict.fromkeys(k[2] for k in index))
    columns = list(table.means.columns)
    fig, axes = plt.subplots(
        len(masked),
        len(columns),
        figsize=(3.2 * len(columns), 2.9 * len(masked)),
        squeeze=False,
        sharey=True,
    )
    colors = {m: f"C{k}" for k, m in enumerate(methods)}
    for r, mod in enumerate(masked):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            for method in methods:
                rows = [i for i, k in enumerate(index) if k[0] == mod and k[2] == method]
                x = np.array([float(index[i][1].rstrip("%")) for i in rows])
                m = np.array([table.means.iat[i, c] for i in rows], float)
                s = np.nan_to_num(np.array([table.stds.iat[i, c] for i in rows], float))
                ax.plot(
                    x,
                    m,
                    marker="o",
                    color=colors[method],
                    label=method,
                    linewidth=2.5 if method == "MLA" else 1.4,
                )
                ax.fill_between(x, m - s, m + s, color=colors[method], alpha=0.2, linewidth=0)
            _chance_line(ax, [table.chance.iat[i, c] for i, k in enumerate(index) if k[0] == mod])
            ax.set_ylim(0, 100)
            ax.set_title(f"{column} accuracy, {mod} masked", fontsize=9)
            ax.set_xlabel(f"{mod} masked in training (%)", fontsize=8)
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(table.title.split(",")[0].replace("Figure 2: ", "Figure 2, "), fontsize=10)
    fig.tight_layout()
    return _png(fig)
