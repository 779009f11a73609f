"""The finished runs of a leaderboard folder as the reports' rows (one dict per run), and
the cells that failed."""

from __future__ import annotations

import glob
import json
import os

from mla_plugin.leaderboard.runner import parse_setting

# the modality gap a cell's analysis step writes (python -m mla_plugin.analysis.gap), and
# the name leaderboards before it wrote (read when the new one is absent)
GAP_FILES = ("gap.json", "modality_gap.json")


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_gap(run_dir: str) -> dict | None:
    """A run's modality gap (the dict ``gap_for_run`` returns), None without one."""
    for name in GAP_FILES:
        if os.path.isfile(os.path.join(run_dir, name)):
            return _read_json(os.path.join(run_dir, name))
    return None


def load_runs(out: str) -> list[dict]:
    """Every finished run under ``<out>/runs/<dataset name>/<variant>/eta<η>/seed<s>/``."""
    runs = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "metrics.json"))):
        run_dir = os.path.dirname(path)
        metrics = _read_json(path)
        if not metrics:
            continue
        cell = _read_json(os.path.join(run_dir, "cell.json")) or {}
        parts = os.path.relpath(run_dir, os.path.join(out, "runs")).split(os.sep)
        rate, mask = parse_setting(parts[2])  # the folder's, for a run without cell.json
        if cell.get("missing_rate") is not None:
            rate = cell["missing_rate"]
        if "train_mask" in cell:
            mask = cell["train_mask"]
        runs.append(
            {
                "dataset": cell.get("dataset", parts[0]),
                "method": metrics["method"],
                "variant": cell.get("variant", parts[1]),
                "seed": int(metrics["seed"]),
                "missing_rate": float(rate),
                "train_mask": (str(mask[0]), float(mask[1])) if mask else None,
                "selection": metrics.get("selection"),
                "selected_epoch": metrics.get("selected_epoch"),
                "modalities": list(metrics.get("modalities") or []),
                "val": metrics.get("val") or {},
                "test": metrics.get("test") or {},
                "majority": metrics.get("majority") or {},
                "roc_auc": metrics.get("roc_auc") or {},  # binary tasks only
                "gap": read_gap(run_dir),
                "seconds": cell.get("seconds"),
                "overrides": cell.get("overrides", []),
                "variant_overrides": cell.get("variant_overrides", []),
                "config": cell.get("config"),
                "data": cell.get("data"),
                "mmf_dataset": cell.get("mmf_dataset"),
                "run_dir": run_dir,
            }
        )
    return runs


def load_failures(out: str) -> list[dict]:
    """Cells whose last attempt failed and that have no metrics.json (a ``cell.json``
    without ``ok`` is a run still going or interrupted, not a failure)."""
    failed = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "cell.json"))):
        cell = _read_json(path)
        run_dir = os.path.dirname(path)
        if (
            cell
            and cell.get("ok") is False
            and not os.path.isfile(os.path.join(run_dir, "metrics.json"))
        ):
            failed.append(dict(cell, run_dir=run_dir))
    return failed


def failure_text(record: dict) -> str:
    """How a failed run ended: its exit status, or its SLURM job's state (e.g. CANCELLED)."""
    if record.get("slurm_state"):
        return f"SLURM job {record.get('slurm_job_id')} {record['slurm_state']}"
    return f"exit {record.get('returncode')}"
