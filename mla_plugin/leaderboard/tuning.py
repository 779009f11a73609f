"""``mla-leaderboard --tune N``: one Optuna study per (dataset, method, data setting), N
trials each, on the validation split; the leaderboard's seeds then run at each method's
best trial (docs/leaderboard.md "Tuning (--tune)").

- The search spaces are ``mla_plugin/configs/search.yaml`` (``shared`` keys for every
  method plus the method's own; read by :mod:`~.search_space`); a trial's parameters
  become MMF overrides of its run.
- A trial is an ordinary leaderboard cell (a :class:`~.cells.Cell`, its lock
  and its skip-if-finished), in ``<out>/tuning/<dataset>/<method>/<setting>/trial<n>/seed<s>``,
  trained with the tuning seeds (disjoint from the leaderboard's); its value is the fused
  val accuracy at its selected epoch (``metrics.json`` ``val.multi``; the mean over the
  tuning seeds).  Test accuracy is never read here.
- Trial n of a study is proposed by a fresh ``TPESampler(seed=sampler_seed + n)`` from the
  study's finished trials, so a rerun proposes the same trials.  The studies advance in
  rounds: round n asks each study for its trial n, runs all of them (``--jobs`` in
  parallel), then tells their values.  No pruning (every trial runs its whole schedule).
- The studies live in an Optuna RDB storage: ``<out>/tuning.db`` (SQLite) by default, any
  SQLAlchemy URL with ``--storage``.  A killed leaderboard resumes: told trials are kept;
  a trial left RUNNING is taken over with its stored parameters (its run resumes or, if it
  finished, is skipped) and told under its own number, so the finished study equals an
  uninterrupted one.
- A failed trial run counts against the budget (state FAIL, no value).
- The selection is written to ``<out>/tuning.json``; the reports show it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from mla_plugin.leaderboard.cells import Cell
from mla_plugin.leaderboard.methods import (
    PROBE,
    UNIMODAL,
    Variant,
    dataset_label,
    variant_label,
    variant_order,
)
from mla_plugin.leaderboard.search_space import (
    as_overrides,
    distributions,
    method_space,
    storage_url,
)
from mla_plugin.utils.io import atomic_write_json

TUNING_FILE = "tuning.json"
TUNING_DIR = "tuning"


@dataclasses.dataclass
class Study:
    """One (dataset, method, setting) study and the cell its trials copy."""

    name: str
    base: Cell  # the method's plain variant, at the leaderboard's first seed
    params: dict  # parameter specs
    optuna_study: object = None

    def trial_cells(self, number: int, params: dict, seeds: Sequence[int], out: str) -> list:
        # the method's plain variant; a unimodal reference keeps its modality
        variant = self.base.variant
        if variant.method != UNIMODAL:
            variant = Variant(variant.method)
        folder = os.path.join(out, TUNING_DIR, self.base.dataset, variant.folder)
        folder = os.path.join(folder, self.base.setting, f"trial{number:03d}")
        return [
            dataclasses.replace(
                self.base,
                variant=variant,
                seed=int(s),
                save_dir=os.path.join(folder, f"seed{s}"),
                overrides=tuple(self.base.overrides) + as_overrides(params),
                gap_methods=(),  # a trial is judged on val: no modality gap
            )
            for s in seeds
        ]


def study_key(cell: Cell) -> str:
    """The study a cell's setting comes from: its method's (MLA's ablation variants share
    MLA's); each ``unimodal-<modality>`` reference has its own."""
    method = cell.variant.name if cell.variant.method == UNIMODAL else cell.variant.method
    return f"{cell.dataset}/{method}/{cell.setting}"


def _value(cells: Sequence[Cell]) -> float | None:
    """Mean fused val accuracy of the trial's runs; None if any has none."""
    values = []
    for c in cells:
        try:
            with open(c.metrics_path) as f:
                values.append(float(json.load(f)["val"]["multi"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return sum(values) / len(values)


class Tuner:
    """Runs the studies for ``cells`` (the leaderboard's plan) with ``runner``."""

    def __init__(self, cells, trials: int, out: str, storage: str | None, space: dict, runner, log):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.trials, self.out, self.space, self.runner, self.log = trials, out, space, runner, log
        self.url = storage_url(storage, out)
        self.seeds = list(space["tuning_seeds"])
        overlap = sorted({c.seed for c in cells} & set(self.seeds))
        if overlap:
            raise ValueError(
                f"seeds {overlap} are both leaderboard seeds and tuning seeds "
                "(search.tuning_seeds); tuning and final seeds must be disjoint"
            )
        self.studies: dict[str, Study] = {}
        for c in cells:
            key = study_key(c)
            if c.variant.method == PROBE:  # the probes choose their C on val themselves
                continue
            if key not in self.studies:
                self.studies[key] = Study(key, c, method_space(space, c.variant.method))

    def _open(self, study: Study):
        import optuna

        os.makedirs(self.out, exist_ok=True)
        s = optuna.create_study(
            storage=self.url, study_name=study.name, direction="maximize", load_if_exists=True
        )
        stored = s.user_attrs.get("space")
        if stored is None:
            s.set_user_attr("space", study.params)
            s.set_user_attr("tuning_seeds", self.seeds)
            s.set_user_attr("sampler", self._sampler_attrs())
        elif stored != study.params or (
            s.user_attrs.get("tuning_seeds"),
            s.user_attrs.get("sampler"),
        ) != (self.seeds, self._sampler_attrs()):
            raise ValueError(
                f"study {study.name!r} in {self.url} was run with another search space, tuning "
                "seeds or sampler; use another --out or --storage"
            )
        study.optuna_study = s

    def _sampler_attrs(self) -> dict:
        return {k: self.space[k] for k in ("sampler_seed", "startup_trials")}

    def _sampler(self, number: int):
        import optuna

        return optuna.samplers.TPESampler(
            seed=int(self.space["sampler_seed"]) + number,
            n_startup_trials=int(self.space["startup_trials"]),
        )

    def _next(self, study: Study):
        """(trial number, params) to run in this round: a trial left RUNNING (taken over),
        else a new one while the budget lasts; None when the study is complete."""
        import optuna
        from optuna.trial import TrialState

        s = study.optuna_study
        trials = s.get_trials(deepcopy=False)
        dists = distributions(study.params)
        for t in trials:
            if t.state == TrialState.RUNNING and t.number < self.trials:
                if set(t.params) != set(dists):  # killed inside the ask: draw the rest
                    s.sampler = self._sampler(t.number)
                    trial = optuna.trial.Trial(s, t._trial_id)
                    for k, dist in dists.items():
                        trial._suggest(k, dist)
                    t = s.get_trials(deepcopy=False)[t.number]
                self.log(f"tuning: {study.name} trial {t.number} taken over (left running)")
                return t.number, dict(t.params)
        if len(trials) >= self.trials:
            return None
        s.sampler = self._sampler(len(trials))
        trial = s.ask(dists)
        return trial.number, dict(trial.params)

    def run(self) -> dict:
        """Run every study to its budget; returns and writes the selection."""
        from optuna.trial import TrialState

        for study in self.studies.values():
            self._open(study)
        while True:
            batch = []
            for study in self.studies.values():
                nxt = self._next(study)
                if nxt is not None:
                    number, params = nxt
                    batch.append(
                        (study, number, study.trial_cells(number, params, self.seeds, self.out))
                    )
            if not batch:
                break
            self.log(
                "tuning round: "
                + ", ".join(f"{st.name} trial {n + 1}/{self.trials}" for st, n, _ in batch)
            )
            self.runner.run([c for _, _, cells in batch for c in cells])
            for study, number, cells in batch:
                value = _value(cells)
                if value is None:
                    study.optuna_study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
                    self.log(
                        f"tuning: {study.name} trial {number} failed (see {cells[0].log_path})"
                    )
                else:
                    study.optuna_study.tell(number, value, skip_if_finished=True)
        selection = self.selection()
        atomic_write_json(selection, os.path.join(self.out, TUNING_FILE))
        return selection

    def selection(self) -> dict:
        """Per study the best of its first ``trials`` trials (ties: the lower number)."""
        from optuna.trial import TrialState

        studies = {}
        for key, study in self.studies.items():
            trials = [
                t for t in study.optuna_study.get_trials(deepcopy=False) if t.number < self.trials
            ]
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            if not done:
                raise RuntimeError(
                    f"tuning: no trial of {key} finished (logs under "
                    f"{os.path.join(self.out, TUNING_DIR, key)})"
                )
            best = max(done, key=lambda t: (t.value, -t.number))
            studies[key] = {
                "dataset": study.base.dataset,
                "method": study.name.split("/")[1],  # unimodal-<modality> for a reference
                "setting": study.base.setting,
                "best_trial": best.number,
                "best_val": best.value,
                "params": dict(best.params),
                "overrides": list(as_overrides(best.params)),
                "trials": len(trials),
                "failed": sum(t.state == TrialState.FAIL for t in trials),
            }
        return {
            "budget": self.trials,
            "storage": self.url,
            "sampler": f"TPESampler(seed={self.space['sampler_seed']} + trial number, "
            f"{self.space['startup_trials']} random startup trials), no pruning",
            "tuning_seeds": self.seeds,
            "objective": "fused val accuracy at the run's selected epoch (mean over tuning seeds)",
            "studies": studies,
        }


def apply(cells: Sequence[Cell], selection: dict, strict: bool = True) -> list[Cell]:
    """The leaderboard's cells at their method's best trial (ablation variants at their
    method's: the variant's own switches still come after).  ``strict=False`` (``--status``,
    ``--dry-run``): a cell without a study yet stays as it is."""
    out = []
    for c in cells:
        chosen = selection["studies"].get(study_key(c))
        if c.variant.method == PROBE or (chosen is None and not strict):
            out.append(c)
            continue
        if chosen is None:
            raise KeyError(f"tuning: no selection for {study_key(c)}")
        out.append(
            dataclasses.replace(c, overrides=tuple(c.overrides) + tuple(chosen["overrides"]))
        )
    return out


# ------------------------------------------------------------------ reports
def load_selection(out: str) -> dict | None:
    try:
        with open(os.path.join(out, TUNING_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def header(selection: dict | None) -> str:
    if not selection:
        return "Hyper-parameters: untuned (fixed protocol)."
    return (
        f"Hyper-parameters: tuned on val, {selection['budget']} trials per method "
        f"(Optuna {selection['sampler']}; tuning seeds {selection['tuning_seeds']})."
    )


def frame(selection: dict | None):
    """The selection as a table: one row per study (None when untuned)."""
    import pandas as pd

    if not selection:
        return None
    studies = list(selection["studies"].values())
    order = variant_order({s["method"] for s in studies})  # the tables' method order
    studies.sort(key=lambda s: (s["dataset"], order.index(s["method"]), s["setting"]))
    rows = [
        {
            "dataset": s["dataset"],
            "method": s["method"],
            "setting": s["setting"],
            "trials": s["trials"],
            "failed": s["failed"],
            "best_trial": s["best_trial"],
            "best_val": round(100 * s["best_val"], 2),
            "params": " ".join(f"{k}={_short(v)}" for k, v in sorted(s["params"].items())),
        }
        for s in studies
    ]
    return pd.DataFrame(rows)


def _short(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(selection: dict | None) -> str:
    table = frame(selection)
    if table is None:
        return ""
    lines = [
        "## Selected hyper-parameters",
        "",
        f"{header(selection)} Best val: the best trial's fused val accuracy (%).",
        "",
        "| dataset | method | trials | best trial | best val | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {dataset_label(r.dataset)} | {variant_label(r.method)} | {r.trials}"
            + (f" ({r.failed} failed)" if r.failed else "")
            + f" | {r.best_trial} | {r.best_val:.2f} | {r.params} |"
        )
    return "\n".join(lines)


def html(selection: dict | None) -> str:
    """The header line, and the selection's table when tuned, for ``index.html``."""
    from html import escape

    parts = [f'<p class="tuning">{escape(header(selection))}</p>\n']
    table = frame(selection)
    if table is not None:
        heads = ["dataset", "method", "trials", "best trial", "best val (%)", "parameters"]
        parts.append("<h2>Selected hyper-parameters</h2>\n<table><thead><tr>")
        parts.append("".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>\n")
        for r in table.itertuples():
            cells = [dataset_label(r.dataset), variant_label(r.method), r.trials, r.best_trial]
            cells += [f"{r.best_val:.2f}", r.params]
            parts.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>\n")
        parts.append("</tbody></table>\n")
    return "".join(parts)
