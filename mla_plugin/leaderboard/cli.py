"""``mla-leaderboard``: MLA and the baselines side by side, as the paper's tables.

    mla-leaderboard --datasets avdigits --seeds 3 --ablation --jobs 2 --out runs/lb
    mla-leaderboard --datasets iemocap --methods mla_late_fusion qmf mla \\
        --missing-rates 0 0.1 0.3 0.5 0.7 --out runs/iemocap_missing
    mla-leaderboard --config projects/mla/leaderboard/demo.yaml     # settings from a YAML file
    mla-leaderboard --datasets iemocap --methods table2 --missing-rates 0.1 0.3 0.5 0.7
    mla-leaderboard --datasets avdigits --methods qmf mla --train-mask audio:0 audio:0.5 audio:0.9
    mla-leaderboard --datasets synthetic -- training.max_epochs=5   # overrides for every run
    mla-leaderboard --datasets iemocap --set 'model_config.{method}.missing_fill=zeros' ...
    mla-leaderboard --config paper.yaml --executor slurm --partition gpu --gpus-per-task 1
    mla-leaderboard --config paper.yaml --status          # every cell's state; runs nothing
    mla-leaderboard --datasets features --tune 8 --set dataset_config.features.data_dir=DIR
        # first 8 Optuna trials per method on val, then the seeds at each best trial

Every cell (dataset × method variant × missing rate × seed) is an ordinary ``mmf_run``
writing ``<out>/runs/<dataset name>/<variant>/eta<η>/seed<s>/metrics.json`` (then, for
--gap-methods, the modality gap); finished cells are skipped, so rerunning the same
command resumes.  Reports (``leaderboard.md``,
``leaderboard.csv``, ``index.html``) are rebuilt from every finished run under
``<out>/runs`` after each run and at the end, replaced as one set (a new folder, one
symlink swapped), so a killed leaderboard leaves complete reports of the runs finished so
far.  With ``--tune N`` the studies (tuning.py) run first.  Exits 1 when any run
failed (the others still ran).
The experiment configs are the repository's ``projects/mla/configs/*.yaml``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mla_plugin.leaderboard import plan as planning
from mla_plugin.leaderboard.executors import make_executor
from mla_plugin.leaderboard.executors.slurm import SLURM_DEFAULTS
from mla_plugin.leaderboard.methods import KNOWN_METHODS, METHOD_SETS
from mla_plugin.leaderboard.plan import parse_train_mask
from mla_plugin.leaderboard.settings import Settings, from_args
from mla_plugin.utils.io import remove_stale_temps

DEFAULTS = Settings()


def _train_mask_arg(value: str) -> tuple[str, float]:
    try:
        return parse_train_mask(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mla-leaderboard",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        help="experiment configs by name (projects/mla/configs/<name>.yaml) "
        f"or path (default {DEFAULTS.datasets}), each optionally CONFIG:name=NAME,data_dir=DIR "
        "(its name in the reports and under OUT/runs; its data folder)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        help=f"of {KNOWN_METHODS}, or a set: 'table1' (the eight of Table 1, the default), "
        f"'table2' (Table 2's {len(METHOD_SETS['table2'])}: Late Fusion, QMF, the "
        "missing-modality methods, MLA), 'paper' (Table 1's and unimodal), 'modulation', "
        "'staged', 'balance' (the field's methods registered), 'all' (every registered plugin "
        "model); also MMF's own "
        "models listed in mla_plugin/configs/mmf_models.yaml, e.g. concat_bow, concat_bert, "
        "late_fusion, mmbt",
    )
    p.add_argument(
        "--seeds", nargs="+", help="a count N (seeds 1..N) or a list of seeds (default 3)"
    )
    p.add_argument(
        "--missing-rates",
        dest="missing_rates",
        nargs="+",
        type=float,
        help="missing rates η in [0, 1) (default 0); >1 value gives the Table 2 layout",
    )
    p.add_argument(
        "--train-mask",
        dest="train_masks",
        nargs="+",
        type=_train_mask_arg,
        metavar="MODALITY:RATIO",
        help="Figure 2: mask MODALITY in a fraction RATIO in [0, 1] of the TRAIN samples only "
        "(val and test complete); each value is a cell setting next to η (several, e.g. "
        "audio:0 audio:0.5 audio:0.9); the report adds Figure 2's plot and table",
    )
    p.add_argument(
        "--references",
        nargs="+",
        help="Table 1's reference columns: probe (logistic-regression probes per modality "
        "and on all modalities), unimodal (the unimodal model per modality), or none "
        "(default: probe unimodal)",
    )
    p.add_argument(
        "--selections",
        nargs="+",
        metavar="{val,test_max}",
        help="run every method under each model selection, side by side: val (fair) and "
        "test_max (the best test epoch, as BalanceBenchmark reports: marked as not a fair "
        "selection); the report adds what selecting on test adds. Tuning, if any, stays on "
        "val (default: the config's protocol.selection)",
    )
    p.add_argument(
        "--ablation",
        action="store_const",
        const=True,
        default=None,
        help="add MLA's HGM on/off × entropy/mean fusion variants (Table 3)",
    )
    p.add_argument("--out", help=f"output folder (default {DEFAULTS.out})")
    p.add_argument("--jobs", type=int, help="parallel runs (default 1)")
    p.add_argument(
        "--tune",
        type=int,
        metavar="N",
        help="first tune every method on val with N Optuna trials each (same budget for all; "
        "search spaces in mla_plugin/configs/search.yaml), then run the seeds at each "
        "method's best trial; default: the fixed protocol, untuned",
    )
    p.add_argument(
        "--prune",
        choices=["none", "median", "asha"],
        help="with --tune: stop hopeless trials early (each trial's runs report their val "
        "accuracy per epoch); median (default): below the median of the earlier trials at the "
        "same epoch, after 2 trials and 3 epochs; asha: successive halving; none",
    )
    p.add_argument(
        "--warm-workers",
        dest="warm_workers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the local cells in one warm worker process per job (default), so a cell "
        "pays its training and not MMF's start-up; --no-warm-workers: one process per cell",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the studies' Optuna RDB storage, any SQLAlchemy URL "
        "(default sqlite:///OUT/tuning.db); resuming a killed tuning keeps its finished trials",
    )
    p.add_argument(
        "--search-space",
        dest="search_space",
        metavar="YAML",
        help="another search-space file (the format of mla_plugin/configs/search.yaml)",
    )
    p.add_argument(
        "--gpus",
        nargs="+",
        help="GPU ids to spread the parallel jobs over "
        "(job slot k gets CUDA_VISIBLE_DEVICES=gpus[k %% len(gpus)]); default: as the environment",
    )
    p.add_argument("--config", help="a YAML file with these settings (command-line flags win)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="KEY=VALUE",
        help="an MMF override for every run (repeatable; also: -- KEY=VALUE ...); "
        "{method} and {dataset} in it become the run's model and dataset key",
    )
    p.add_argument(
        "--gap-methods",
        dest="gap_methods",
        nargs="+",
        help="methods whose runs get the modality gap: names, 'all' or 'none' (default mla concat)",
    )
    p.add_argument("--title", help="the report's title")
    p.add_argument(
        "--report-only", action="store_true", help="only rebuild the reports from finished runs"
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument(
        "--status",
        action="store_true",
        help="list the cells by state (done, running, queued, failed, cancelled, pending) and exit",
    )
    slurm = p.add_argument_group("SLURM (--executor slurm; also the `slurm:` section of --config)")
    slurm.add_argument(
        "--executor",
        choices=["local", "slurm"],
        help="run the cells as local subprocesses (default) or as SLURM jobs via submitit",
    )
    slurm.add_argument("--partition", help="sbatch --partition")
    slurm.add_argument(
        "--gpus-per-task", dest="gpus_per_task", type=int, help="sbatch --gpus-per-task"
    )
    slurm.add_argument(
        "--cpus-per-task",
        dest="cpus_per_task",
        type=int,
        help=f"sbatch --cpus-per-task (default {SLURM_DEFAULTS['cpus_per_task']})",
    )
    slurm.add_argument(
        "--time-min",
        dest="time_min",
        type=int,
        help=f"sbatch --time in minutes (default {SLURM_DEFAULTS['time_min']})",
    )
    slurm.add_argument(
        "--sbatch",
        action="append",
        metavar="OPTION[=VALUE]",
        help="a further sbatch option (repeatable), e.g. --sbatch qos=high",
    )
    slurm.add_argument(
        "--array",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one job array per submission (default) or one job per cell (--no-array)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def resolve_settings(argv: list[str] | None = None) -> Settings:
    """The settings of a command line; a bad one is a usage error (exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return from_args(args, passthrough)
    except (OSError, ValueError) as exc:  # a usage error (exit 2), before anything runs
        parser.error(str(exc))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plan_cells(s: Settings) -> list:
    """The settings' cells, checked against what their folders hold (a tuned leaderboard's
    once its selection is applied)."""
    cells = planning.plan(
        s.datasets, s.methods, s.seeds, s.missing_rates, s.out,
        ablation=bool(s.ablation), overrides=s.overrides, train_masks=s.train_masks,
        references=s.references, gap_methods=s.gap_methods, selections=s.selections,
    )  # fmt: skip
    if not s.tune:
        planning.check_identities(cells)  # a folder holding another run is refused
        return cells
    from mla_plugin.leaderboard.tuning import apply, load_selection

    selection = load_selection(s.out)  # tuned cells carry their selection once it is known
    if (s.status or s.dry_run) and selection:
        cells = apply(cells, selection, strict=False)
    return cells


def tune(s: Settings, cells: list, executor) -> list:
    """``--tune``: the studies first, then the cells at each method's best trial."""
    from mla_plugin.leaderboard.tuning import Tuner, apply

    tuner = Tuner(cells, s.tune, s.out, s.storage, s.space, executor, _log, prune=s.prune)
    cells = apply(cells, tuner.run())
    planning.check_identities(cells)  # e.g. untuned runs of an earlier leaderboard
    return cells


def execute(s: Settings, cells: list, executor) -> list:
    """Run the cells; the reports follow each finished run."""
    extra = f" × {len(s.train_masks)} training mask(s)" if s.train_masks else ""
    _log(
        f"{len(cells)} runs: {len(s.datasets)} dataset(s) × {len(s.methods)} method(s)"
        f"{' + ablation' if s.ablation else ''} × {len(s.missing_rates)} missing rate(s)"
        f"{extra}{f' × {len(s.selections)} selections' if len(s.selections) > 1 else ''}"
        f" × {len(s.seeds)} seed(s); output {s.out}"
    )
    for path in remove_stale_temps(s.out) if os.path.isdir(s.out) else []:
        _log(f"removed {path}, left by a leaderboard killed while writing its report")

    def refresh_report(result):
        """The reports follow the finished runs, so a long leaderboard can be read (and
        killed) at any time; every file is replaced atomically."""
        try:
            from mla_plugin.leaderboard import reports

            reports.build(s.out, title=s.title)
        except Exception as exc:  # the final build raises it
            _log(f"report not refreshed after {result.cell.key}: {exc}")

    return executor.run(cells, on_result=refresh_report)


def write_reports(s: Settings, start: float) -> None:
    from mla_plugin.leaderboard import reports

    built = reports.build(s.out, title=s.title)
    # every results table, as in leaderboard.md (the paper's reference table stays there)
    for table in [built["table1"], *built["table2"], built["table3"], built["gap"],
                  *built["figure2"]]:  # fmt: skip
        if table is not None:
            print(reports.to_markdown(table))
    _log(f"reports: {', '.join(built['paths'].values())} ({time.time() - start:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    """parse -> settings -> plan -> execute -> reports; 0, 1 (a run failed), 2 (usage)."""
    s = resolve_settings(argv)
    start, failed = time.time(), []
    if not s.report_only:
        try:
            cells = plan_cells(s)  # validates datasets, methods, rates before anything runs
            if s.status:
                from mla_plugin.leaderboard.status import format_status, status

                print(format_status(status(cells)))
                return 0
            executor = make_executor(s, _log)  # finds mmf_run (or sbatch)
            if s.dry_run:
                for c in cells:
                    print(("[done] " if c.done() else "") + " ".join(c.command(executor.mmf_run)))
                return 0
            if s.tune:
                cells = tune(s, cells, executor)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"mla-leaderboard: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # during the tuning
            _log("interrupted: finished trials are kept; run the same command again to resume")
            return 130
        try:
            failed = [r for r in execute(s, cells, executor) if not r.ok]
            getattr(executor, "close", lambda: None)()  # the warm workers, if any
        except KeyboardInterrupt:
            _log("interrupted: finished runs are kept; run the same command again to resume")
            return 130
        except (ValueError, RuntimeError) as exc:  # SLURM: a command failed, other settings
            _log(f"mla-leaderboard: {exc}")
            return 2
    try:
        write_reports(s, start)
    except OSError as exc:  # e.g. --report-only into an --out that cannot be made
        print(
            f"mla-leaderboard: cannot write the reports into --out {s.out}: {exc}", file=sys.stderr
        )
        return 2
    if failed:
        _log(f"{len(failed)} run(s) failed: " + ", ".join(r.cell.key for r in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
