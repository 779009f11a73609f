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
writing ``<out>/runs/<dataset name>/<variant>/eta<η>/seed<s>/metrics.json``; finished cells
are skipped, so rerunning the same command resumes.  Reports (``leaderboard.md``,
``leaderboard.csv``, ``index.html``) are rebuilt from every finished run under
``<out>/runs`` after each run and at the end, replaced as one set (a new folder, one
symlink swapped), so a killed leaderboard leaves complete reports of the runs finished so
far.  With ``--tune N`` the studies (tuning.py) run first.  Exits 1 when any run
failed (the others still ran).
Run it from the repository root (the experiment configs are ``projects/mla/configs/*.yaml``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from mla_plugin.leaderboard.methods import ALL_METHODS, KNOWN_METHODS, METHOD_SETS, METHODS
from mla_plugin.leaderboard.runner import (
    Runner,
    check_identities,
    parse_seeds,
    parse_train_mask,
    plan,
)
from mla_plugin.leaderboard.slurm import SLURM_DEFAULTS
from mla_plugin.utils.io import remove_stale_temps

DEFAULTS = {
    "datasets": ["synthetic"],
    "methods": list(METHODS),
    "seeds": [3],
    "missing_rates": [0.0],
    "ablation": False,
    "out": "runs/leaderboard",
    "jobs": 1,
    "overrides": [],
    "gap_methods": ["mla", "concat"],
    "title": "MLA leaderboard",
    "gpus": [],
    "train_masks": [],
    "references": ["probe", "unimodal"],
    # --tune N: N Optuna trials per method on val first (tuning.py); 0 = the fixed protocol
    "tune": 0,
    "storage": None,
    "search_space": None,
}
KEYS = set(DEFAULTS)
# the executor: local subprocesses, or SLURM jobs with the `slurm:` settings (slurm.py)
DEFAULTS.update(executor="local", slurm={})
KEYS |= {"executor", "slurm"}


def _flatten(mapping, prefix="") -> list[str]:
    items = []
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            items += _flatten(v, key + ".")
        elif isinstance(v, (list, tuple)):
            items.append(f"{key}=[{','.join(map(str, v))}]")
        else:
            items.append(f"{key}={'null' if v is None else v}")
    return items


def load_config_file(path: str) -> dict:
    """Leaderboard settings from an MMF-style YAML file: the keys of ``DEFAULTS`` at the
    top level or under ``leaderboard:``; ``includes:`` (paths relative to the file) are
    merged first; ``overrides`` is a list of ``key=value`` or a (nested) mapping."""
    import yaml

    try:
        with open(path) as f:
            spec = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(
            f"{path}: expected a mapping of leaderboard settings (or `leaderboard:` holding "
            f"one), got a {type(spec).__name__}"
        )
    merged: dict = {}
    includes = spec.pop("includes", []) or []
    if not isinstance(includes, list):
        raise ValueError(f"{path}: includes must be a list of paths, got {includes!r}")
    for inc in includes:
        merged.update(load_config_file(os.path.join(os.path.dirname(path), inc)))
    section = spec.get("leaderboard", spec)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: `leaderboard:` must be a mapping of settings, got {section!r}")
    spec = {str(k).replace("-", "_"): v for k, v in section.items()}
    unknown = set(spec) - KEYS
    if unknown:
        raise ValueError(
            f"{path}: unknown leaderboard settings {sorted(unknown)}; known: {sorted(KEYS)}"
        )
    for key, value in spec.items():
        if key == "overrides":
            value = _flatten(value) if isinstance(value, dict) else [str(v) for v in value or []]
            value = merged.get("overrides", []) + value
        elif key == "slurm":
            if not isinstance(value, dict):
                raise ValueError(f"{path}: slurm must be a mapping of settings, got {value!r}")
            value = {
                **merged.get("slurm", {}),
                **{k.replace("-", "_"): v for k, v in value.items()},
            }
        elif key in (
            "datasets",
            "methods",
            "gap_methods",
            "gpus",
            "train_masks",
            "references",
        ) and isinstance(value, (str, int)):
            value = str(value).split()
        elif key in ("seeds", "missing_rates") and not isinstance(value, list):
            value = [value]
        if key in SCALAR_TYPES and value is not None and not isinstance(value, SCALAR_TYPES[key]):
            raise ValueError(f"{path}: {key} must be {SCALAR_TYPES[key].__name__}, got {value!r}")
        merged[key] = value
    return merged


# the config file's settings that are one value of one type
SCALAR_TYPES = {
    "jobs": int,
    "tune": int,
    "out": str,
    "title": str,
    "storage": str,
    "search_space": str,
    "executor": str,
}


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
        f"or path (default {DEFAULTS['datasets']}), each optionally CONFIG:name=NAME,data_dir=DIR "
        "(its name in the reports and under OUT/runs; its data folder)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        help=f"of {KNOWN_METHODS}, or a set: 'table1' (the eight of Table 1, the default), "
        f"'table2' (Table 2's {len(METHOD_SETS['table2'])}: Late Fusion, QMF, the "
        "missing-modality methods, MLA), 'all' (Table 1's and unimodal); also any model "
        "in MMF's registry, e.g. MMF's concat_bow, concat_bert, late_fusion, mmbt",
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
        "--ablation",
        action="store_const",
        const=True,
        default=None,
        help="add MLA's HGM on/off × entropy/mean fusion variants (Table 3)",
    )
    p.add_argument("--out", help=f"output folder (default {DEFAULTS['out']})")
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


def resolve_settings(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _resolve(args, passthrough)
    except (OSError, ValueError) as exc:  # a usage error (exit 2), before anything runs
        parser.error(str(exc))


def _check_out(out) -> None:
    """``out`` must be (or become) a folder: not a file, nor under one."""
    path = os.path.abspath(str(out))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--out {out}: is a file, not a folder")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"--out {out}: {parent} is a file, not a folder")


def _resolve(args, passthrough) -> dict:
    settings = dict(DEFAULTS)
    if args.config:
        if not os.path.isfile(args.config):
            raise ValueError(f"--config {args.config}: no such file")
        settings.update(load_config_file(args.config))
    for key in KEYS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = (settings.get("overrides", []) + value) if key == "overrides" else value
    settings["overrides"] = list(settings["overrides"]) + passthrough
    bad = [o for o in settings["overrides"] if "=" not in o]
    if bad:
        raise SystemExit(f"mla-leaderboard: overrides must be KEY=VALUE, got {bad}")
    methods = [settings["methods"]] if isinstance(settings["methods"], str) else settings["methods"]
    settings["methods"] = list(
        dict.fromkeys(m for name in methods for m in METHOD_SETS.get(name, [name]))
    )
    try:
        settings["train_masks"] = [
            tuple(t) if isinstance(t, (list, tuple)) else parse_train_mask(t)
            for t in settings["train_masks"] or []
        ]
    except ValueError as exc:
        raise SystemExit(f"mla-leaderboard: {exc}") from None
    refs = settings["references"]
    settings["references"] = [] if refs in (["none"], "none", None) else list(refs)
    settings["seeds"] = parse_seeds(settings["seeds"])
    if not isinstance(settings["jobs"], int) or settings["jobs"] < 1:
        raise ValueError(f"--jobs must be an integer >= 1, got {settings['jobs']!r}")
    _check_out(settings["out"])
    if not isinstance(settings["tune"], int) or settings["tune"] < 0:
        raise ValueError(
            f"--tune N: N must be an integer >= 1 (trials per method), got {settings['tune']!r}"
        )
    if args.tune is not None and args.tune < 1:
        raise ValueError(f"--tune N: N must be >= 1 (trials per method), got {args.tune}")
    if settings["storage"] is not None:
        from mla_plugin.leaderboard.tuning import check_storage_url

        check_storage_url(settings["storage"])
    if settings["tune"]:
        from mla_plugin.leaderboard.tuning import load_space

        settings["space"] = load_space(settings["search_space"])
    settings["missing_rates"] = [float(r) for r in settings["missing_rates"]]
    gm = settings["gap_methods"]
    settings["gap_methods"] = (
        list(ALL_METHODS)
        if gm in (["all"], "all")
        else []
        if gm in (["none"], "none")
        else list(gm)
    )
    settings.update(
        report_only=args.report_only, dry_run=args.dry_run, progress=not args.no_progress
    )
    settings["status"] = args.status
    settings["slurm"] = _slurm_settings(settings, args)
    return settings


def _slurm_settings(settings: dict, args) -> dict:
    """The `slurm:` settings: the config file's, then the flags'; checked."""
    from mla_plugin.leaderboard.slurm import check_settings, parse_sbatch_options

    if settings["executor"] not in ("local", "slurm"):
        raise ValueError(f"executor must be local or slurm, got {settings['executor']!r}")
    slurm = dict(settings["slurm"] or {})
    for key in ("partition", "gpus_per_task", "cpus_per_task", "time_min", "array"):
        if getattr(args, key) is not None:
            slurm[key] = getattr(args, key)
    if args.sbatch:
        slurm["additional"] = {**slurm.get("additional", {}), **parse_sbatch_options(args.sbatch)}
    if settings["executor"] == "slurm" and settings["gpus"]:
        raise ValueError("--gpus is for --executor local; on SLURM use --gpus-per-task")
    return check_settings(slurm)


def compute_gaps(cells, methods, log) -> int:
    """``python -m mla_plugin.analysis.gap`` on the finished runs of ``methods`` that
    lack one (one subprocess for all).  Returns its exit status."""
    from mla_plugin.analysis.gap import GAP_FILE

    dirs = [
        c.save_dir
        for c in cells
        if c.variant.method in methods
        and c.done()
        and not os.path.isfile(os.path.join(c.save_dir, GAP_FILE))
    ]
    if not dirs:
        return 0
    log(f"modality gap for {len(dirs)} run(s)")
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore::UserWarning",
            "-m",
            "mla_plugin.analysis.gap",
            "--save-dir",
            *dirs,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode:
        log(f"modality gap: some runs failed:\n{proc.stderr[-3000:]}")
    return proc.returncode


def _slurm_runner(settings: dict, log):
    import shutil

    from mla_plugin.leaderboard.runner import mmf_run_path
    from mla_plugin.leaderboard.slurm import SlurmRunner

    if not shutil.which("sbatch"):
        raise FileNotFoundError("--executor slurm: sbatch not found on PATH (no SLURM client)")
    folder = os.path.join(os.path.abspath(settings["out"]), "slurm")
    return SlurmRunner(settings["slurm"], folder, mmf_run_path(), log=log)


def main(argv: list[str] | None = None) -> int:
    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        settings = resolve_settings(argv)
        if not settings["report_only"]:
            # validates datasets, methods, rates and finds mmf_run before anything runs
            cells = plan(
                settings["datasets"],
                settings["methods"],
                settings["seeds"],
                settings["missing_rates"],
                settings["out"],
                ablation=bool(settings["ablation"]),
                overrides=settings["overrides"],
                train_masks=settings["train_masks"],
                references=settings["references"],
            )
            # a run folder holding another dataset's (or other settings') run is refused
            if settings["tune"]:
                from mla_plugin.leaderboard.tuning import apply, load_selection

                # a tuned leaderboard's cells carry their selection: checked once it is known
                selection = load_selection(settings["out"])
                if (settings["status"] or settings["dry_run"]) and selection:
                    cells = apply(cells, selection, strict=False)
            else:
                check_identities(cells)
            if settings["status"]:
                from mla_plugin.leaderboard.slurm import format_status, status

                print(format_status(status(cells)))
                return 0
            if settings["executor"] == "slurm":
                runner = _slurm_runner(settings, log)
            else:
                runner = Runner(
                    jobs=settings["jobs"],
                    progress=settings["progress"],
                    log=log,
                    gpus=[str(g) for g in settings["gpus"]],
                )
            if settings["tune"] and not settings["dry_run"]:
                from mla_plugin.leaderboard.tuning import Tuner

                tuner = Tuner(
                    cells, settings["tune"], settings["out"], settings["storage"],
                    settings["space"], runner, log,
                )  # fmt: skip
                cells = apply(cells, tuner.run())
                check_identities(cells)  # e.g. untuned runs of an earlier leaderboard
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"mla-leaderboard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # during the tuning
        log("interrupted: finished trials are kept; run the same command again to resume")
        return 130

    out = settings["out"]
    start = time.time()
    failed = []
    if not settings["report_only"]:
        if settings["dry_run"]:
            for c in cells:
                print(("[done] " if c.done() else "") + " ".join(c.command(runner.mmf_run)))
            return 0
        log(
            f"{len(cells)} runs: {len(settings['datasets'])} dataset(s) × {len(settings['methods'])} method(s)"
            f"{' + ablation' if settings['ablation'] else ''} × {len(settings['missing_rates'])} missing rate(s)"
            + (
                f" × {len(settings['train_masks'])} training mask(s)"
                if settings["train_masks"]
                else ""
            )
            + f" × {len(settings['seeds'])} seed(s); output {out}"
        )
        for path in remove_stale_temps(out) if os.path.isdir(out) else []:
            log(f"removed {path}, left by a leaderboard killed while writing its report")

        def refresh_report(result):
            """The reports follow the finished runs, so a long leaderboard can be read
            (and killed) at any time; every file is replaced atomically."""
            try:
                from mla_plugin.leaderboard import reports

                reports.build(out, title=settings["title"])
            except Exception as exc:  # the final build below raises it
                log(f"report not refreshed after {result.cell.key}: {exc}")

        try:
            results = runner.run(cells, on_result=refresh_report)
        except KeyboardInterrupt:
            log("interrupted: finished runs are kept; run the same command again to resume")
            return 130
        except (
            ValueError,
            RuntimeError,
        ) as exc:  # SLURM: a command failed, a job for other settings
            log(f"mla-leaderboard: {exc}")
            return 2
        failed = [r for r in results if not r.ok]
        if settings["gap_methods"]:
            compute_gaps(cells, settings["gap_methods"], log)
    from mla_plugin.leaderboard import reports

    built = reports.build(out, title=settings["title"])
    # every results table, as in leaderboard.md (the paper's reference table stays there)
    for table in [
        built["table1"],
        *built["table2"],
        built["table3"],
        built["gap"],
        *built["figure2"],
    ]:
        if table is not None:
            print(reports.to_markdown(table))
    log(f"reports: {', '.join(built['paths'].values())} ({time.time() - start:.0f} s)")
    if failed:
        log(f"{len(failed)} run(s) failed: " + ", ".join(r.cell.key for r in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
