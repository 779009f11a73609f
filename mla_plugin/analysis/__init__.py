"""Analysis steps of the MMF layer, each a program run in a leaderboard cell's own process
(never in the leaderboard's):

- :mod:`~mla_plugin.analysis.probe`: Table 1's linear probes, ``python -m
  mla_plugin.analysis.probe <mmf_run options>`` (writes the probe cell's ``metrics.json``);
- :mod:`~mla_plugin.analysis.gap`: the modality gap of a finished run, ``python -m
  mla_plugin.analysis.gap --save-dir DIR`` (writes ``DIR/gap.json``).
"""
