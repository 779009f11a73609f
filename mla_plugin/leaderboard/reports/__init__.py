"""The leaderboard's reports (``leaderboard.md``, ``leaderboard.csv``, ``modality_gap.csv``,
``index.html``) from the finished runs of a leaderboard folder.  Pandas, matplotlib and
Jinja2 only: neither torch nor MMF.

- :mod:`~.runs`: the runs as rows (one dict per run; the modality gap under ``"gap"``);
- :mod:`~.table`: :class:`Table`, best/second marks, chance, Markdown;
- :mod:`~.frames`: the tidy frame and the helpers the tables share;
- :mod:`~.table1` (Table 1, ROC-AUC, the paper's Table 1), :mod:`~.table2` (missing rates,
  Figure 2), :mod:`~.table3` (MLA's ablation), :mod:`~.probes` (the reference runs and the
  probe check), :mod:`~.gap` (the modality gap);
- :mod:`~.significance` (McNemar, paired bootstrap, Holm, ranks, Friedman, Nemenyi),
  :mod:`~.pairs` (paired tests on the runs' test predictions, Table 1's tie marks, seeds),
  :mod:`~.across` (ranks and the critical-difference diagram across datasets) and
  :mod:`~.differences` (their section of the reports): which differences are real;
- :mod:`~.protocol`: the settings beside the numbers;
- :mod:`~.files`: :func:`build` writes every file; :mod:`~.render` the page (Jinja2
  templates in ``templates/``), :mod:`~.plots` its PNGs.
"""

from mla_plugin.leaderboard.reports.files import build
from mla_plugin.leaderboard.reports.frames import CSV_COLUMNS, tidy
from mla_plugin.leaderboard.reports.gap import gap_frame, gap_table
from mla_plugin.leaderboard.reports.probes import flags, probe_gaps, probe_table
from mla_plugin.leaderboard.reports.protocol import package_versions, protocol, run_config
from mla_plugin.leaderboard.reports.runs import load_failures, load_runs
from mla_plugin.leaderboard.reports.table import (
    CHANCE_MARK,
    CHANCE_TOLERANCE,
    Table,
    mark_best,
    to_markdown,
)
from mla_plugin.leaderboard.reports.table1 import paper_table1, roc_auc_table, table1
from mla_plugin.leaderboard.reports.table2 import figure2, table2
from mla_plugin.leaderboard.reports.table3 import table3

__all__ = [
    "CHANCE_MARK",
    "CHANCE_TOLERANCE",
    "CSV_COLUMNS",
    "Table",
    "build",
    "figure2",
    "flags",
    "gap_frame",
    "gap_table",
    "load_failures",
    "load_runs",
    "mark_best",
    "package_versions",
    "paper_table1",
    "probe_gaps",
    "probe_table",
    "protocol",
    "roc_auc_table",
    "run_config",
    "table1",
    "table2",
    "table3",
    "tidy",
    "to_markdown",
]
