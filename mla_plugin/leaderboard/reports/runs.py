"""The finished runs of a leaderboard folder as the reports' rows (one dict per run, from
:class:`mla_plugin.leaderboard.runs.RunRecord`, their one reader), and the cells that
failed.  A run selected on the test split (``protocol.selection: test_max``) enters the
reports under its own variant and method, ``<name>@test_max``, so every table shows it in
a column (or row) of its own, labelled with the mark of an unfair selection, beside the
same method selected on val."""

from __future__ import annotations

import glob
import json
import os

from mla_plugin.leaderboard import runs as records
from mla_plugin.leaderboard.methods import selection_variant


def load_runs(out: str) -> list[dict]:
    """The rows of the finished runs (:func:`mla_plugin.leaderboard.runs.load_runs`), a
    test-selected run's method and variant suffixed (module docstring)."""
    rows = records.load_runs(out)
    for row in rows:
        row["method"] = selection_variant(row["method"], row["selection"])
        row["variant"] = selection_variant(row["variant"], row["selection"])
    return rows


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
