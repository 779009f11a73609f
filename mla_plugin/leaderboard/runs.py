"""A finished run as the reports see it, read from one place: :meth:`RunRecord.load`
combines the run folder's ``cell.json`` (what the leaderboard ran: dataset, variant, data
setting, overrides, data record, wall time), ``metrics.json`` (what MMF measured) and
``gap.json`` (the cell's modality-gap step, when it has one); ``test_predictions.npz``
(per-sample test predictions, for the paired tests) is found, not read, here.  The folder's path
(``<out>/runs/<dataset>/<variant>/<setting>/seed<s>``) is only a fallback for runs without
a ``cell.json``."""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

from mla_plugin.leaderboard.cells import GAP_FILE, parse_setting, read_json
from mla_plugin.leaderboard.methods import split_test_selected
from mla_plugin.utils.io import PREDICTIONS_FILE

LEGACY_GAP_FILE = "modality_gap.json"  # where earlier leaderboards wrote the gap


@dataclasses.dataclass(frozen=True)
class RunRecord:
    dataset: str
    method: str
    variant: str
    seed: int
    missing_rate: float
    train_mask: tuple | None
    metrics: dict  # metrics.json
    cell: dict  # cell.json ({} for a run without one)
    gap: dict | None
    run_dir: str

    @classmethod
    def load(cls, save_dir: str, runs_root: str | None = None) -> RunRecord | None:
        """The finished run in ``save_dir``; None without a readable ``metrics.json``.
        ``runs_root`` (``<out>/runs``) lets the folder names stand in for a missing
        ``cell.json``."""
        metrics = read_json(os.path.join(save_dir, "metrics.json"))
        if not metrics:
            return None
        cell = read_json(os.path.join(save_dir, "cell.json")) or {}
        parts = ["", "", "", ""]
        if runs_root is not None:
            parts = os.path.relpath(save_dir, runs_root).split(os.sep) + parts
        rate, mask = parse_setting(parts[2])  # the folder's, for a run without cell.json
        if cell.get("missing_rate") is not None:
            rate = cell["missing_rate"]
        if "train_mask" in cell:
            mask = cell["train_mask"]
        gap = read_json(os.path.join(save_dir, GAP_FILE))
        if gap is None:
            gap = read_json(os.path.join(save_dir, LEGACY_GAP_FILE))
        return cls(
            dataset=cell.get("dataset", parts[0]),
            method=metrics["method"],
            variant=cell.get("variant", split_test_selected(parts[1])[0]),
            seed=int(metrics["seed"]),
            missing_rate=float(rate),
            train_mask=(str(mask[0]), float(mask[1])) if mask else None,
            metrics=metrics,
            cell=cell,
            gap=gap,
            run_dir=save_dir,
        )

    def row(self) -> dict[str, Any]:
        """The dict the reports' tables take (one row of ``reports.load_runs``)."""
        m, c = self.metrics, self.cell
        return {
            "dataset": self.dataset,
            "method": self.method,
            "variant": self.variant,
            "seed": self.seed,
            "missing_rate": self.missing_rate,
            "train_mask": self.train_mask,
            "selection": m.get("selection"),
            "selected_epoch": m.get("selected_epoch"),
            "modalities": list(m.get("modalities") or []),
            "val": m.get("val") or {},
            "test": m.get("test") or {},
            "majority": m.get("majority") or {},
            "roc_auc": m.get("roc_auc") or {},  # binary tasks only
            "gap": self.gap,
            "seconds": c.get("seconds"),
            "overrides": c.get("overrides", []),
            "variant_overrides": c.get("variant_overrides", []),
            "config": c.get("config"),
            "data": c.get("data"),
            "mmf_dataset": c.get("mmf_dataset"),
            "run_dir": self.run_dir,
            "predictions": self.predictions,
        }

    @property
    def predictions(self) -> str | None:
        """The run's per-sample test predictions file; None for a run made before runs
        kept them (the reports say "no paired test" for it)."""
        path = os.path.join(self.run_dir, PREDICTIONS_FILE)
        return path if os.path.isfile(path) else None


def load_records(out: str) -> list[RunRecord]:
    """Every finished run under ``<out>/runs/<dataset name>/<variant>/<setting>/seed<s>/``."""
    root = os.path.join(out, "runs")
    records = []
    for path in sorted(
        glob.glob(os.path.join(glob.escape(root), "*", "*", "*", "*", "metrics.json"))
    ):
        record = RunRecord.load(os.path.dirname(path), root)
        if record is not None:
            records.append(record)
    return records


def load_runs(out: str) -> list[dict]:
    """:func:`load_records` as the reports' row dicts (:meth:`RunRecord.row`)."""
    return [r.row() for r in load_records(out)]
