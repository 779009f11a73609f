"""The side-by-side leaderboard: methods × datasets × seeds (× missing rates, × MLA's
ablation), each cell an ordinary ``mmf_run``, reported in the paper's table layouts.

- :mod:`~mla_plugin.leaderboard.runner`: the cells and their parallel, resumable runs;
- :mod:`~mla_plugin.leaderboard.report`: ``leaderboard.md``/``.csv`` and ``index.html``;
- :mod:`~mla_plugin.leaderboard.gap`: the modality gap of a trained model;
- :mod:`~mla_plugin.leaderboard.cli`: the ``mla-leaderboard`` console script
  (also ``python -m mla_plugin.leaderboard``).
"""
