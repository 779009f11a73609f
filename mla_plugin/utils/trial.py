"""What a leaderboard trial run and the leaderboard share (standard library only): the
environment variable naming the Optuna trial a run belongs to, and the file where the run
records how it ended when that was not an ordinary finish (pruned, diverged).

The leaderboard (``mla_plugin.leaderboard.tuning``) sets :data:`TRIAL_ENV` to a JSON
object ``{"storage", "study", "trial", "pruner", "params"}`` for a trial's run; the run's
``optuna_trial`` callback (``mla_plugin.trainers.trial_report``) reads it, reports each
validation to the study and writes :data:`TRIAL_FILE` in its save_dir."""

from __future__ import annotations

import json
import os

TRIAL_ENV = "MLA_OPTUNA_TRIAL"
TRIAL_FILE = "trial.json"


def trial_spec(env=None) -> dict | None:
    """The trial named by the environment (:data:`TRIAL_ENV`), None for a plain run."""
    value = (os.environ if env is None else env).get(TRIAL_ENV)
    if not value:
        return None
    spec = json.loads(value)
    missing = {"storage", "study", "trial", "pruner"} - set(spec)
    if missing:
        raise ValueError(f"{TRIAL_ENV}: missing {sorted(missing)} in {value!r}")
    return spec


def read_outcome(save_dir: str) -> dict | None:
    """The run's :data:`TRIAL_FILE` (``{"outcome": "pruned"|"diverged", ...}``), or None."""
    try:
        with open(os.path.join(save_dir, TRIAL_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
