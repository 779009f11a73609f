"""The finished runs of a leaderboard folder as the reports' rows (one dict per run, from
:class:`mla_plugin.leaderboard.runs.RunRecord`, their one reader), and the cells that
failed."""

from __future__ import annotations

import glob
import json
import os

from mla_plugin.leaderboard.runs import load_runs  # noqa: F401  (the rows, one place)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


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
