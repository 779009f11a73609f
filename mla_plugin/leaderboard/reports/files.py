"""The leaderboard's reports, built from whatever runs are in ``<out>/runs``:

- ``leaderboard.csv``: tidy, one row per run × split × modality (accuracy as a fraction);
- ``modality_gap.csv``: one row per run with a computed modality gap;
- ``pairwise.csv``: every paired test (:func:`~.pairs.paired_tests`: each pair of Table 1's
  methods on each of its rows);
- ``leaderboard.md``: the tables in Markdown (best **bold**, second <ins>underlined</ins>,
  among the cells above chance; cells at chance marked †; in Table 1, ≈ for a method the
  paired tests do not separate from the best), the paired tests, the seeds line and the
  across-dataset ranks (:mod:`~.differences`);
- ``index.html``: one self-contained page (inline CSS and base64 PNG plots, no external
  resources) with the paper's Table 1 layout, Table 2 (missing rates) with a line plot,
  Table 3 (ablation), a bar chart with error bars, a per-modality ("laziness") chart per
  method, the modality gap, Figure 2 (each modality's accuracy against a training-only
  mask, from ``--train-mask`` runs, which the other tables leave out), the paired tests'
  table and heat map, the critical-difference diagram and the protocol beside the
  numbers.

Tables show test accuracy in %, mean ± sample standard deviation (ddof 1) over seeds.
All files are written atomically, as one set.
"""

from __future__ import annotations

import time

from mla_plugin.leaderboard import tuning
from mla_plugin.leaderboard.reports import differences, render
from mla_plugin.leaderboard.reports.frames import tidy
from mla_plugin.leaderboard.reports.gap import gap_frame, gap_table
from mla_plugin.leaderboard.reports.probes import probe_table
from mla_plugin.leaderboard.reports.protocol import (
    package_versions,
    protocol,
    protocol_markdown,
)
from mla_plugin.leaderboard.reports.runs import failure_text, load_failures, load_runs
from mla_plugin.leaderboard.reports.selection import selection_gain
from mla_plugin.leaderboard.reports.table import to_markdown
from mla_plugin.leaderboard.reports.table1 import paper_table1, roc_auc_table, table1
from mla_plugin.leaderboard.reports.table2 import figure2, table2
from mla_plugin.leaderboard.reports.table3 import table3
from mla_plugin.utils.io import atomic_write_set


def build(out: str, title: str = "MLA leaderboard") -> dict:
    """Write every report into ``out``; returns the tables and paths."""
    runs = load_runs(out)
    failures = load_failures(out)
    frame = tidy(runs, out)
    gaps = gap_frame(runs, out)
    # Figure 2's training-masked runs have their own table; the others the paper's tables
    plain = [r for r in runs if not r["train_mask"]]
    t1, t3, t2s, tg, tp, f2s = (
        table1(plain),
        table3(plain),
        table2(plain),
        gap_table(plain),
        paper_table1(plain),
        figure2(runs),
    )
    checks = probe_table(plain)
    # paired tests, Table 1's tie marks, seeds, across datasets ("which differences are real")
    real = differences.section(plain, t1)
    t_auc = roc_auc_table(plain)  # beside Table 1 for binary tasks (Hateful Memes)
    t_sel = selection_gain(plain)  # --selections val test_max: what test selection adds
    versions = package_versions()
    proto = protocol(runs, out) if runs else {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    tuned = tuning.load_selection(out)  # --tune's selection (tuning.json), None if untuned

    # Markdown
    md = [
        f"# {title}",
        "",
        f"{len(runs)} finished runs, generated {stamp}. Test accuracy (%), "
        "mean ± std over seeds; best **bold**, second <ins>underlined</ins> among the cells "
        "above chance (the test split's majority-class rate); † at chance; ≈ tied with the "
        "best (paired tests, below).",
        "",
        tuning.header(tuned),
        "",
    ]
    for t in [t1, t_sel, t_auc, checks, *t2s, t3, tg, *f2s, tp]:
        if t is not None:
            md += [to_markdown(t), ""]
    md += [real.markdown(), ""]
    if failures:
        md += (
            ["## Failed runs", ""]
            + [f"- {f['run_dir']} ({failure_text(f)}): see run.log" for f in failures]
            + [""]
        )
    if tuned is not None:
        md += [tuning.markdown(tuned), ""]
    md.append(protocol_markdown(proto, versions))

    page = render.page(
        title,
        stamp,
        len(runs),
        failures,
        t1,
        t2s,
        t3,
        tg,
        tp,
        proto,
        versions,
        figure2=f2s,
        checks=checks,
        differences=real,
        selection=t_sel,
    )
    page = page.replace("</h1>\n", "</h1>\n" + tuning.html(tuned), 1)

    files = {
        "leaderboard.csv": frame.to_csv(index=False),
        "modality_gap.csv": gaps.to_csv(index=False),
        "pairwise.csv": real.pairs.to_csv(index=False),  # every paired test, every row
        "index.html": page,
        "leaderboard.md": "\n".join(md).rstrip("\n") + "\n",
    }
    if tuned is not None:
        files["tuning.csv"] = tuning.frame(tuned).to_csv(index=False)
    # replaced as one set (a new folder, one symlink swapped): never files of two builds
    paths = atomic_write_set(out, files)
    return {
        "runs": runs,
        "failures": failures,
        "table1": t1,
        "checks": checks,
        "table2": t2s,
        "table3": t3,
        "gap": tg,
        "figure2": f2s,
        "roc_auc": t_auc,
        "selection": t_sel,
        "differences": real,
        "paths": paths,
    }
