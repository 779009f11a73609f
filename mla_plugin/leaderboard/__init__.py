"""The side-by-side leaderboard: methods × datasets × seeds (× missing rates, × MLA's
ablation), each cell an ordinary ``mmf_run``, reported in the paper's table layouts.

- :mod:`~mla_plugin.leaderboard.methods`: the method lists, MLA's ablation variants and
  every method, dataset and selection-rule label;
- :mod:`~mla_plugin.leaderboard.settings`, :mod:`~mla_plugin.leaderboard.plan`,
  :mod:`~mla_plugin.leaderboard.cells`, :mod:`~mla_plugin.leaderboard.executors`: the
  settings, the grid of cells and their parallel, resumable runs (without torch or MMF);
- :mod:`~mla_plugin.leaderboard.runs`: a finished run, as the reports read it;
- :mod:`~mla_plugin.leaderboard.reports`: reads the runs, writes ``leaderboard.md``/``.csv``
  and ``index.html`` (no torch, no MMF);
- :mod:`~mla_plugin.leaderboard.paper`: the paper's published numbers;
- :mod:`~mla_plugin.leaderboard.cli`: the ``mla-leaderboard`` console script
  (also ``python -m mla_plugin.leaderboard``).
"""
