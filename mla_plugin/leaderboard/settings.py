"""The leaderboard's settings: one :class:`Settings`, filled from a YAML file
(``--config``, e.g. ``projects/mla/leaderboard/*.yaml``, read by
:mod:`~mla_plugin.leaderboard.experiments`) and then the command line (flags win), and
validated once.  A bad setting raises ValueError naming the flag or the file and key; the
CLI turns it into a usage error (exit 2) before anything runs."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from mla_plugin.leaderboard import experiments
from mla_plugin.leaderboard.methods import METHOD_SETS, METHODS
from mla_plugin.leaderboard.plan import parse_seeds, parse_train_mask

# the settings a YAML file may hold (at the top level or under `leaderboard:`)
LIST_KEYS = (
    "datasets",
    "methods",
    "gap_methods",
    "gpus",
    "train_masks",
    "references",
    "selections",
)
# --selections: the model selections a method may run under, side by side
SELECTIONS = ("val", "test_max")
# the settings that are one value of one type
SCALAR_TYPES = {
    "jobs": int,
    "tune": int,
    "out": str,
    "title": str,
    "storage": str,
    "search_space": str,
    "executor": str,
    "prune": str,
    "warm_workers": bool,
}


@dataclasses.dataclass
class Settings:
    datasets: list = dataclasses.field(default_factory=lambda: ["synthetic"])
    methods: list = dataclasses.field(default_factory=lambda: list(METHODS))
    seeds: list = dataclasses.field(default_factory=lambda: [3])
    missing_rates: list = dataclasses.field(default_factory=lambda: [0.0])
    ablation: bool = False
    out: str = "runs/leaderboard"
    jobs: int = 1
    overrides: list = dataclasses.field(default_factory=list)  # MMF overrides for every run
    gap_methods: list = dataclasses.field(default_factory=lambda: ["mla", "concat"])
    title: str = "MLA leaderboard"
    gpus: list = dataclasses.field(default_factory=list)
    train_masks: list = dataclasses.field(default_factory=list)
    references: list = dataclasses.field(default_factory=lambda: ["probe", "unimodal"])
    # each method under each selection (val, test_max), side by side; [] = the config's
    selections: list = dataclasses.field(default_factory=list)
    # --tune N: N Optuna trials per method on val first (tuning.py); 0 = the fixed protocol
    tune: int = 0
    storage: str | None = None
    search_space: str | None = None
    # --prune: how a study stops hopeless trials (tuning.py); median: docs/leaderboard.md
    prune: str = "median"
    # run the local cells in one warm worker process per job slot (executors/warm.py)
    warm_workers: bool = True
    # the executor: local subprocesses, or SLURM jobs with the `slurm:` settings
    executor: str = "local"
    slurm: dict = dataclasses.field(default_factory=dict)
    # the command line's modes (not in a YAML file)
    report_only: bool = False
    dry_run: bool = False
    status: bool = False
    progress: bool = True
    space: dict | None = None  # the loaded search space, with --tune

    def validate(self) -> Settings:
        """Normalise every setting (method sets, seeds, masks, 'none'/'all') and check it;
        ValueError naming the flag."""
        bad = [o for o in self.overrides if "=" not in str(o)]
        if bad:
            raise ValueError(f"overrides must be KEY=VALUE, got {bad}")
        methods = [self.methods] if isinstance(self.methods, str) else self.methods
        self.methods = list(
            dict.fromkeys(m for name in methods for m in METHOD_SETS.get(name, [name]))
        )
        self.train_masks = [
            tuple(t) if isinstance(t, (list, tuple)) else parse_train_mask(t)
            for t in self.train_masks or []
        ]
        refs = self.references
        self.references = [] if refs in (["none"], "none", None) else list(refs)
        self.seeds = parse_seeds(self.seeds)
        self.selections = list(dict.fromkeys(self.selections or []))
        bad = [x for x in self.selections if x not in SELECTIONS]
        if bad:
            raise ValueError(f"--selections: {bad} not among {list(SELECTIONS)}")
        if self.selections and any(
            str(o).startswith("protocol.selection=") for o in self.overrides
        ):
            raise ValueError(
                "--selections and --set protocol.selection=... both choose the selection; "
                "give one of them"
            )
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"--jobs must be an integer >= 1, got {self.jobs!r}")
        _check_out(self.out)
        if not isinstance(self.tune, int) or self.tune < 0:
            raise ValueError(
                f"--tune N: N must be an integer >= 1 (trials per method), got {self.tune!r}"
            )
        if self.storage is not None:
            from mla_plugin.leaderboard.search_space import check_storage_url

            check_storage_url(self.storage)
        if self.prune not in ("none", "median", "asha"):
            raise ValueError(f"--prune must be none, median or asha, got {self.prune!r}")
        if self.tune:
            from mla_plugin.leaderboard.search_space import load_space

            self.space = load_space(self.search_space)
        try:
            self.missing_rates = [float(r) for r in self.missing_rates]
        except (TypeError, ValueError):
            raise ValueError(
                f"missing_rates (--missing-rates): expected numbers in [0, 1), got "
                f"{self.missing_rates!r}"
            ) from None
        gm = self.gap_methods
        self.gap_methods = (
            list(METHOD_SETS["all"]) if gm in (["all"], "all") else [] if gm in (["none"], "none") else list(gm)
        )  # fmt: skip
        if self.executor not in ("local", "slurm"):
            raise ValueError(f"executor must be local or slurm, got {self.executor!r}")
        self.gpus = [str(g) for g in self.gpus or []]
        bad = [g for g in self.gpus if not re.fullmatch(r"[0-9]+|(GPU|MIG)-[0-9A-Za-z/-]+", g)]
        if bad:
            raise ValueError(
                f"--gpus: {bad} are not GPU indices (0 1 ...) or UUIDs (GPU-..., MIG-...), "
                "the values CUDA_VISIBLE_DEVICES takes"
            )
        if self.executor == "slurm" and self.gpus:
            raise ValueError("--gpus is for --executor local; on SLURM use --gpus-per-task")
        from mla_plugin.leaderboard.executors.slurm import check_settings

        self.slurm = check_settings(dict(self.slurm or {}))
        return self


FILE_KEYS = {f.name for f in dataclasses.fields(Settings)} - {
    "report_only",
    "dry_run",
    "status",
    "progress",
    "space",
}


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


def load_config_file(path: str) -> dict[str, Any]:
    """The settings of a YAML file: the keys of :class:`Settings` at the top level or under
    ``leaderboard:``; ``includes:`` (paths relative to the file) come first, the file's own
    keys replace theirs except ``overrides`` (appended) and ``slurm`` (merged);
    ``overrides`` is a list of ``key=value`` or a (nested) mapping."""
    what = "leaderboard settings (or `leaderboard:` holding one)"
    merged: dict = {}
    for file, config in experiments.chain(path, what):
        spec = experiments.to_container(config)
        section = spec.get("leaderboard", spec)
        if not isinstance(section, dict):
            raise ValueError(
                f"{file}: `leaderboard:` must be a mapping of settings, got {section!r}"
            )
        merged = _merge_file(file, section, merged)
    return merged


def _merge_file(path: str, section: dict, merged: dict) -> dict:
    spec = {str(k).replace("-", "_"): v for k, v in section.items()}
    unknown = set(spec) - FILE_KEYS
    if unknown:
        raise ValueError(
            f"{path}: unknown leaderboard settings {sorted(unknown)}; known: {sorted(FILE_KEYS)}"
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
        elif key in LIST_KEYS and isinstance(value, (str, int)):
            value = str(value).split()
        elif key in ("seeds", "missing_rates") and not isinstance(value, list):
            value = [value]
        if key in SCALAR_TYPES and value is not None and not isinstance(value, SCALAR_TYPES[key]):
            raise ValueError(f"{path}: {key} must be {SCALAR_TYPES[key].__name__}, got {value!r}")
        merged[key] = value
    return merged


SLURM_FLAGS = ("partition", "gpus_per_task", "cpus_per_task", "time_min", "array")


def from_args(args, passthrough: list[str]) -> Settings:
    """The settings of a parsed command line (``args``, from ``cli.build_parser``) and its
    overrides after ``--``: the ``--config`` file's, then the flags'; validated."""
    values: dict[str, Any] = {}
    if args.config:
        if not os.path.isfile(args.config):
            raise ValueError(f"--config {args.config}: no such file")
        values.update(load_config_file(args.config))
    for key in FILE_KEYS - {"slurm"}:
        value = getattr(args, key, None)
        if value is not None:
            values[key] = (values.get("overrides", []) + value) if key == "overrides" else value
    values["overrides"] = list(values.get("overrides", [])) + passthrough
    if args.tune is not None and args.tune < 1:
        raise ValueError(f"--tune N: N must be >= 1 (trials per method), got {args.tune}")
    slurm = dict(values.get("slurm") or {})
    for key in SLURM_FLAGS:
        if getattr(args, key) is not None:
            slurm[key] = getattr(args, key)
    if args.sbatch:
        from mla_plugin.leaderboard.executors.slurm import parse_sbatch_options

        slurm["additional"] = {**slurm.get("additional", {}), **parse_sbatch_options(args.sbatch)}
    values["slurm"] = slurm
    settings = Settings(
        **values,
        report_only=args.report_only,
        dry_run=args.dry_run,
        status=args.status,
        progress=not args.no_progress,
    )
    return settings.validate()
