"""Table 3: MLA's ablation (head gradient modification x dynamic fusion), in Table 1's
layout."""

from __future__ import annotations

from mla_plugin.leaderboard.methods import ABLATION, ABLATION_LABELS
from mla_plugin.leaderboard.reports.frames import base_rate, datasets
from mla_plugin.leaderboard.reports.table import Table
from mla_plugin.leaderboard.reports.table1 import _accuracy_table


def table3(runs) -> Table | None:
    present = {r["variant"] for r in runs}
    corners = {k: v.name for k, v in ABLATION.items()}
    if not all(name in present for k, name in corners.items() if k != (True, True)):
        return None
    columns = {
        corners[k]: ABLATION_LABELS[k]
        for k in ((False, False), (False, True), (True, False), (True, True))
    }
    with_ablation = [
        ds
        for ds in datasets(runs)
        if any(r["dataset"] == ds and r["variant"] == corners[(False, False)] for r in runs)
    ]
    return _accuracy_table(
        runs,
        with_ablation,
        columns,
        base_rate(runs),
        "Table 3: ablation of MLA, test accuracy (%)",
        note="HGM: head gradient modification (model_config.mla.hgm owm | off); "
        "DF: dynamic (entropy) fusion (model_config.mla.fusion entropy | mean)",
    )
