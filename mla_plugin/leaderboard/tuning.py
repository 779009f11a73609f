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
  parallel), then tells their values.
- Pruning (``--prune``, default ``median``): a trial's run learns its study, trial number
  and pruner from ``MLA_OPTUNA_TRIAL`` (:mod:`mla_plugin.utils.trial`); its
  ``optuna_trial`` callback reports each epoch's fused val accuracy to the RDB storage and
  stops the run when the pruner says so (the first tuning seed's run reports; the trial
  is pruned when it is).  A pruned trial is told PRUNED (TPE learns from its last value)
  and counts in the budget like any other.
- The studies live in an Optuna RDB storage: ``<out>/tuning.db`` (SQLite) by default, any
  SQLAlchemy URL with ``--storage``.  A killed leaderboard resumes: told trials are kept;
  a trial left RUNNING is taken over with its stored parameters (its run resumes or, if it
  finished, is skipped) and told under its own number, so the finished study equals an
  uninterrupted one.
- A diverged trial (non-finite training loss) is told a value, so TPE learns to leave its
  region: the best val accuracy its run reached before diverging, or the val split's
  majority rate (``trial.json``); the log has one line for it.  A trial whose run failed
  otherwise counts against the budget (state FAIL, no value).
- The selection is written to ``<out>/tuning.json``; the reports show it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from mla_plugin.leaderboard import experiments
from mla_plugin.leaderboard.cells import Cell
from mla_plugin.leaderboard.methods import PROBE, TEST_SELECTIONS, UNIMODAL, Variant
from mla_plugin.leaderboard.search_space import (
    as_overrides,
    distributions,
    method_space,
    storage_url,
)
from mla_plugin.leaderboard.selection import (  # noqa: F401 (the reports read them here)
    TUNING_FILE,
    frame,
    header,
    html,
    load_selection,
    markdown,
    short,
)
from mla_plugin.utils.io import atomic_write_json
from mla_plugin.utils.trial import TRIAL_ENV, read_outcome

PRUNERS = ("none", "median", "asha")

TUNING_DIR = "tuning"


@dataclasses.dataclass
class Study:
    """One (dataset, method, setting) study and the cell its trials copy."""

    name: str
    base: Cell  # the method's plain variant, at the leaderboard's first seed
    params: dict  # parameter specs
    optuna_study: object = None

    def trial_cells(
        self, number: int, params: dict, seeds: Sequence[int], out: str, report: dict
    ) -> list:
        # the method's plain variant; a unimodal reference keeps its modality
        variant = self.base.variant
        if variant.method != UNIMODAL:
            variant = Variant(variant.method)
        folder = os.path.join(out, TUNING_DIR, self.base.dataset, variant.folder)
        folder = os.path.join(folder, self.base.setting, f"trial{number:03d}")
        # a trial is judged on val: never selected on test (--selections test_max, or a
        # config or --set with protocol.selection: test_max)
        selection = "val" if reads_test(dataclasses.replace(self.base, selection=None)) else None
        return [
            dataclasses.replace(
                self.base,
                variant=variant,
                selection=selection,
                seed=int(s),
                save_dir=os.path.join(folder, f"seed{s}"),
                overrides=tuple(self.base.overrides) + as_overrides(params),
                gap_methods=(),  # a trial is judged on val: no modality gap
                env=((TRIAL_ENV, json.dumps(dict(report, trial=number, report=k == 0))),),
            )
            for k, s in enumerate(seeds)
        ]


def reads_test(cell: Cell) -> bool:
    """Whether ``cell``'s run selects its epoch on the test split (its selection, else its
    overrides', else its experiment config's ``protocol.selection``)."""
    chosen = cell.given_selection()
    if chosen is None:
        config = experiments.load_or_empty(experiments.full_path(cell.config))
        chosen = experiments.select(config, "protocol.selection")
    return chosen in TEST_SELECTIONS


def study_key(cell: Cell) -> str:
    """The study a cell's setting comes from: its method's (MLA's ablation variants share
    MLA's); each ``unimodal-<modality>`` reference has its own."""
    method = cell.variant.name if cell.variant.method == UNIMODAL else cell.variant.method
    return f"{cell.dataset}/{method}/{cell.setting}"


def _value(cells: Sequence[Cell]) -> float | None:
    """Mean fused val accuracy of the trial's runs (a diverged run's recorded value); None
    if any has none."""
    values = []
    for c in cells:
        outcome = read_outcome(c.save_dir) or {}
        if outcome.get("outcome") == "diverged" and outcome.get("value") is not None:
            values.append(float(outcome["value"]))
            continue
        try:
            with open(c.metrics_path) as f:
                values.append(float(json.load(f)["val"]["multi"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return sum(values) / len(values)


def _outcome(cells: Sequence[Cell], kind: str) -> dict | None:
    """The first of the trial's runs that ended ``kind`` (pruned, diverged): its record."""
    for c in cells:
        outcome = read_outcome(c.save_dir)
        if outcome and outcome.get("outcome") == kind:
            return outcome
    return None


class Tuner:
    """Runs the studies for ``cells`` (the leaderboard's plan) with ``runner``."""

    def __init__(
        self, cells, trials: int, out: str, storage: str | None, space: dict, runner, log,
        prune: str = "none",
    ):  # fmt: skip
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.trials, self.out, self.space, self.runner, self.log = trials, out, space, runner, log
        if prune not in PRUNERS:
            raise ValueError(f"--prune {prune!r}: expected one of {', '.join(PRUNERS)}")
        self.prune = prune
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
            s.set_user_attr("pruner", self._pruner_attrs())
        elif s.user_attrs.get("pruner", self._pruner_attrs("none")) != self._pruner_attrs():
            raise ValueError(
                f"study {study.name!r} in {self.url} was run with another pruner "
                f"({s.user_attrs.get('pruner', {}).get('pruner', 'none')}, not {self.prune}); "
                "use the same --prune, or another --out or --storage"
            )
        elif stored != study.params or (
            s.user_attrs.get("tuning_seeds"),
            s.user_attrs.get("sampler"),
        ) != (self.seeds, self._sampler_attrs()):
            raise ValueError(
                f"study {study.name!r} in {self.url} was run with another search space, tuning "
                "seeds or sampler; use another --out or --storage"
            )
        study.optuna_study = s

    def _pruner_attrs(self, prune: str | None = None) -> dict:
        """What the runs' pruner is built from (mla_plugin.trainers.trial_report)."""
        pruning = self.space.get("pruning") or {}
        return {
            "pruner": prune or self.prune,
            "pruner_startup": int(pruning.get("startup_trials", 2)),
            "pruner_warmup": int(pruning.get("warmup_epochs", 3)),
        }

    def _report(self, study: Study) -> dict:
        """What a trial's run needs to report to its study (``MLA_OPTUNA_TRIAL``)."""
        return {"storage": self.url, "study": study.name, **self._pruner_attrs()}

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

        for study in self.studies.values():
            self._open(study)
        while True:
            batch = []
            for study in self.studies.values():
                nxt = self._next(study)
                if nxt is not None:
                    number, params = nxt
                    cells = study.trial_cells(
                        number, params, self.seeds, self.out, self._report(study)
                    )
                    batch.append((study, number, cells))
            if not batch:
                break
            self.log(
                "tuning round: "
                + ", ".join(f"{st.name} trial {n + 1}/{self.trials}" for st, n, _ in batch)
            )
            self.runner.run([c for _, _, cells in batch for c in cells])
            for study, number, cells in batch:
                self._tell(study, number, cells)
        selection = self.selection()
        atomic_write_json(selection, os.path.join(self.out, TUNING_FILE))
        return selection

    def _tell(self, study: Study, number: int, cells: Sequence[Cell]) -> None:
        """Tell the study how trial ``number`` ended: pruned, diverged (with its value),
        complete or failed; one log line for each but the complete."""
        from optuna.trial import TrialState

        s = study.optuna_study
        trial = s.get_trials(deepcopy=False)[number]
        if trial.state.is_finished():
            return
        params = " ".join(f"{k}={short(v)}" for k, v in sorted(trial.params.items()))
        pruned, diverged = _outcome(cells, "pruned"), _outcome(cells, "diverged")
        value = _value(cells)
        if pruned:
            s._storage.set_trial_user_attr(trial._trial_id, "pruned_epoch", pruned["epoch"])
            s.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
            self.log(
                f"tuning: {study.name} trial {number} pruned after epoch {pruned['epoch']} "
                f"(val {pruned['value']:.4f}; {params})"
            )
        elif value is None:
            s.tell(number, state=TrialState.FAIL, skip_if_finished=True)
            self.log(f"tuning: {study.name} trial {number} failed (see {cells[0].log_path})")
        else:
            if diverged:
                s._storage.set_trial_user_attr(trial._trial_id, "diverged_epoch", diverged["epoch"])
                self.log(
                    f"tuning: {study.name} trial {number} diverged in epoch {diverged['epoch']} "
                    f"({params}); recorded at val {value:.4f} ({diverged.get('value_from')})"
                )
            s.tell(number, value, skip_if_finished=True)

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
                "pruned": sum(t.state == TrialState.PRUNED for t in trials),
                "diverged": sum("diverged_epoch" in t.user_attrs for t in trials),
            }
        return {
            "budget": self.trials,
            "storage": self.url,
            "sampler": f"TPESampler(seed={self.space['sampler_seed']} + trial number, "
            f"{self.space['startup_trials']} random startup trials)",
            "pruner": self._pruner_attrs(),
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
