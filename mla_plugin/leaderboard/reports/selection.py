"""What selecting on test adds: for every method run under both selections
(``--selections val test_max``), the test accuracy of its ``test_max`` runs less that of
its val-selected runs of the same seed, in points (mean ± std over seeds).  Table 1 shows
both numbers side by side; this table shows the difference, which no published table
reports (BalanceBenchmark's numbers are test-selected)."""

from __future__ import annotations

import pandas as pd

from mla_plugin.leaderboard.methods import (
    TEST_SELECTED_LEGEND,
    dataset_label,
    split_test_selected,
    variant_label,
    variant_order,
)
from mla_plugin.leaderboard.reports.frames import (
    _modality_rows,
    _test_percent,
    base_rate,
    datasets,
    row_label,
)
from mla_plugin.leaderboard.reports.table import Table, summarise


def selection_gain(runs) -> Table | None:
    """Rows dataset × modality (+ Multi), columns the methods with runs under both
    selections; each cell the paired (same seed) test-selected minus val-selected test
    accuracy in points; None when no method has both."""
    plain = [r for r in runs if r["variant"] == r["method"]]
    rate = base_rate(plain)
    frame = _test_percent(plain)
    frame = frame[frame["missing_rate"] == rate].copy()
    if frame.empty:
        return None
    split = frame["variant"].map(split_test_selected)
    frame["base"], frame["on_test"] = split.str[0], split.str[1]
    key = ["dataset", "modality", "base", "seed"]
    fair = frame[~frame["on_test"]].set_index(key)["value"]
    test = frame[frame["on_test"]].set_index(key)["value"]
    both = pd.concat({"fair": fair, "test": test}, axis=1, join="inner").dropna()
    if both.empty:
        return None
    diff = (both["test"] - both["fair"]).rename("value").reset_index()
    columns = variant_order(set(diff["base"]))
    present = set(diff["dataset"])
    rows = [(ds, m) for ds in datasets(plain) if ds in present for m in _modality_rows(plain, ds)]
    index = pd.MultiIndex.from_tuples(
        [(dataset_label(ds), row_label(m)) for ds, m in rows], names=["Data", "Row"]
    )
    return Table.from_stats(
        "What selecting on test adds: test accuracy, test-selected less val-selected (points)"
        + (f" at missing rate η = {rate:g}" if rate else ""),
        summarise(diff, ["dataset", "modality", "base"]),
        rows,
        columns,
        index,
        [variant_label(c) for c in columns],
        mark_axis=None,
        note="the same method, data and seed under protocol.selection test_max and val "
        "(--selections val test_max), paired by seed; mean ± std over seeds. Positive: "
        "the test-selected number is that much higher than a fair selection gives. "
        + TEST_SELECTED_LEGEND,
    )
