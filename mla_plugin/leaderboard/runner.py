"""Plan and run the leaderboard's cells: one ordinary ``mmf_run`` subprocess per
dataset × method variant × missing rate (× training mask) × seed.

A cell writes into ``<out>/runs/<dataset name>/<variant>/eta<η>/seed<s>/`` (``env.save_dir``;
with a training mask, Figure 2, the third folder is ``eta<η>-mask_<modality><ratio>``):
MMF's ``metrics.json`` and checkpoints, ``run.log`` (the run's stdout and stderr) and
``cell.json`` (the command and its overrides, written when the run starts; the wall time
and the exit status added when it ends).

- A cell's identity (:attr:`Cell.identity`: the dataset's name, config, data folder and its
  fingerprint, every override, the variant, η and the seed) is stored in its ``cell.json``.
  A cell whose ``metrics.json`` exists and whose stored identity equals this leaderboard's
  is skipped, so an interrupted leaderboard resumes; a cell interrupted mid-run resumes from
  its ``current.ckpt`` (every command carries ``checkpoint.resume=True``, which starts
  afresh when there is no checkpoint).  A run folder holding a run of another identity is
  never reused nor overwritten: :func:`check_identities` refuses the whole leaderboard,
  naming what differs (e.g. both data folders).
- Cells run in ``jobs`` parallel subprocesses; each gets ``cpu_count // jobs`` threads
  (``OMP_NUM_THREADS``, unless set) so parallel runs do not oversubscribe the CPU, and,
  given ``gpus``, job slot k sees only GPU ``gpus[k % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``).
- A failed cell is reported with the tail of its log and the others go on.
- With ``jobs > 1`` the first pending cell of each dataset runs before that dataset's
  others, so data caches are built once, not by every parallel job.
- A cell is locked (``flock`` on ``<save_dir>/.lock``) by the leaderboard and, through an
  inherited descriptor, by its ``mmf_run``: if the leaderboard is killed while its runs go
  on, a restarted leaderboard waits for those runs instead of starting a second writer
  into the same folder, then skips them once finished.
- With ``--executor slurm`` each cell is a SLURM job that runs this very :class:`Runner`
  on one cell on its node (:mod:`mla_plugin.leaderboard.slurm`): same command, same files,
  same lock.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import yaml

from mla_plugin.leaderboard.data import describe, parse_spec
from mla_plugin.leaderboard.methods import (
    ABLATION,
    KNOWN_METHODS,
    PROBE,
    REFERENCES,
    UNIMODAL,
    Variant,
    is_known_method,
    registered_models,
)
from mla_plugin.utils.io import atomic_write_json

CONFIG_DIR = os.path.join("projects", "mla", "configs")
LOG_TAIL_LINES = 40
LOCK_POLL_SECONDS = 0.5


@dataclasses.dataclass
class Cell:
    dataset: str  # the leaderboard's name for it (the config file's stem)
    mmf_dataset: str  # MMF's dataset key (the config's ``datasets:``)
    config: str  # the experiment config, as passed to mmf_run
    variant: Variant
    seed: int
    missing_rate: float
    save_dir: str
    overrides: tuple = ()  # the leaderboard's pass-through overrides, then the dataset's own
    data: dict | None = None  # the data folder's record (mla_plugin.leaderboard.data.describe)
    train_mask: tuple | None = None  # (modality, ratio): Figure 2's training-only mask, or None

    @property
    def identity(self) -> dict:
        """Everything that determines the cell's result, as stored in ``cell.json``."""
        data = self.data or {}
        return {
            "dataset": self.dataset,
            "mmf_dataset": self.mmf_dataset,
            "config": self.config,
            "data_dir": data.get("dir"),
            "data_fingerprint": data.get("fingerprint"),
            "method": self.variant.method,
            "variant": self.variant.name,
            "variant_overrides": [f"{k}={v}" for k, v in self.variant.overrides],
            "overrides": list(self.overrides),
            "missing_rate": self.missing_rate,
            "seed": self.seed,
            # only in cells with a training mask, so older runs keep their identity
            **({"train_mask": list(self.train_mask)} if self.train_mask else {}),
        }

    def stored_identity(self) -> dict | None:
        return (_read_record(self) or {}).get("identity")

    def conflict(self) -> str | None:
        """Why this cell's folder cannot be used (it holds a run of another identity, or a
        finished run without one), else None."""
        record = _read_record(self)
        stored = (record or {}).get("identity")
        if stored is None:
            if os.path.isfile(self.metrics_path) or os.path.isfile(
                os.path.join(self.save_dir, "current.ckpt")
            ):
                return (
                    f"{self.save_dir} holds a run whose cell.json records no identity (an "
                    "older leaderboard's), so what it ran on is unknown"
                )
            return None
        mine = self.identity
        if stored == mine:
            return None
        diffs = []
        moved = stored.get("data_dir") != mine["data_dir"]

        def not_dirs(overrides):  # a moved data folder shows as such, not as an override
            return [o for o in overrides or [] if not re.search(r"\.(data|fsdd)_dir=", o)]

        for k in mine:
            if moved and (
                k == "data_fingerprint"
                or (k == "overrides" and not_dirs(stored.get(k)) == not_dirs(mine[k]))
            ):
                continue
            if stored.get(k) != mine[k]:
                if k == "data_dir":
                    diffs.append(
                        f"it ran on data folder {stored.get(k)}, this leaderboard's is {mine[k]}"
                    )
                elif k == "data_fingerprint":
                    diffs.append(
                        f"the files of data folder {mine['data_dir']} changed since it ran "
                        f"(fingerprint {str(stored.get(k))[:12]}, now {str(mine[k])[:12]})"
                    )
                else:
                    diffs.append(f"{k} was {stored.get(k)!r}, now {mine[k]!r}")
        return f"{self.save_dir}: " + "; ".join(diffs)

    @property
    def setting(self) -> str:
        """The cell's data setting, its folder: ``eta<η>``, plus ``-mask_<m><ratio>`` with a
        training mask (e.g. ``eta0-mask_audio0.5``)."""
        return setting_name(self.missing_rate, self.train_mask)

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.variant.name}/{self.setting}/seed{self.seed}"

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.save_dir, "metrics.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.save_dir, "run.log")

    @property
    def record_path(self) -> str:
        return os.path.join(self.save_dir, "cell.json")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.save_dir, ".lock")

    def done(self) -> bool:
        """Finished, by a run of this very identity."""
        return os.path.isfile(self.metrics_path) and self.stored_identity() == self.identity

    def command(self, mmf_run: str) -> list[str]:
        if self.variant.method == PROBE:  # the linear probes: no training, same data
            cmd = [sys.executable, "-m", "mla_plugin.analysis.probe", f"config={self.config}"]
            cmd += [f"training.seed={self.seed}", f"env.save_dir={self.save_dir}"]
        else:
            cmd = [
                mmf_run,
                f"config={self.config}",
                f"model={self.variant.method}",
                f"training.seed={self.seed}",
                f"env.save_dir={self.save_dir}",
                "checkpoint.resume=True",
            ]
        if self.missing_rate:
            cmd.append(f"dataset_config.{self.mmf_dataset}.missing_rate={self.missing_rate:g}")
        if self.train_mask:
            modality, ratio = self.train_mask
            cmd.append(f"dataset_config.{self.mmf_dataset}.train_mask={modality}:{ratio:g}")
        overrides = self.overrides
        if self.variant.method == PROBE:  # no model, so no model_config.{method} to set
            overrides = [o for o in overrides if not o.startswith("model_config.{method}.")]
        cmd += [expand(o, self.variant.method, self.mmf_dataset) for o in overrides]
        cmd += [f"{k}={v}" for k, v in self.variant.overrides]
        return cmd


@dataclasses.dataclass
class Result:
    cell: Cell
    ok: bool
    seconds: float
    returncode: int | None = None
    log_tail: str = ""
    skipped: bool = False


def expand(override: str, method: str, dataset: str) -> str:
    """``{method}`` and ``{dataset}`` in a pass-through override name the cell's model and
    MMF dataset key, e.g. ``model_config.{method}.missing_fill=zeros`` (``${...}``, an
    OmegaConf interpolation, is left alone)."""
    override = re.sub(r"(?<!\$)\{method\}", method, override)
    return re.sub(r"(?<!\$)\{dataset\}", dataset, override)


def format_rate(rate: float) -> str:
    return f"{float(rate):g}"


MASK_TAG = "-mask_"


def setting_name(missing_rate: float, train_mask=None) -> str:
    """A cell's data-setting folder (see :attr:`Cell.setting`)."""
    name = f"eta{format_rate(missing_rate)}"
    if train_mask:
        name += f"{MASK_TAG}{train_mask[0]}{format_rate(train_mask[1])}"
    return name


def parse_setting(name: str) -> tuple[float, tuple | None]:
    """``eta0.3`` -> ``(0.3, None)``; ``eta0-mask_audio0.5`` -> ``(0.0, ("audio", 0.5))``."""
    rate, _, mask = name.partition(MASK_TAG)
    missing = float(rate[3:]) if rate.startswith("eta") else 0.0
    if not mask:
        return missing, None
    m = re.fullmatch(r"(.+?)([0-9.]+(?:e-?[0-9]+)?)", mask)
    return missing, ((m.group(1), float(m.group(2))) if m else None)


def parse_train_mask(value: str) -> tuple[str, float]:
    """``--train-mask`` value ``MODALITY:RATIO`` -> ``(modality, ratio)``, ratio in [0, 1]."""
    name, sep, ratio = str(value).partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"--train-mask {value!r}: expected MODALITY:RATIO, e.g. audio:0.5 "
            "(a modality name, a colon, a ratio in [0, 1])"
        )
    try:
        r = float(ratio)
    except ValueError:
        raise ValueError(f"--train-mask {value!r}: the ratio {ratio!r} is not a number") from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"--train-mask {value!r}: the ratio {r:g} is not in [0, 1]")
    return name, r


def parse_seeds(values: Sequence) -> list[int]:
    """``[3]`` -> seeds 1..3; ``[1, 5, 9]`` (or ``["1,5,9"]``) -> those seeds."""
    items = []
    for v in values:
        items += [s for s in str(v).replace(",", " ").split() if s]
    bad = [s for s in items if not re.fullmatch(r"[0-9]+", s)]
    if bad or not items:
        raise ValueError(
            f"--seeds: expected a count N (seeds 1..N) or a list of seeds, each an integer "
            f">= 0, got {' '.join(map(str, values)) or 'nothing'}"
        )
    seeds = [int(s) for s in items]
    if len(seeds) == 1:
        if seeds[0] < 1:
            raise ValueError(f"--seeds: a count must be >= 1, got {seeds[0]}")
        return list(range(1, seeds[0] + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: repeated seeds in {seeds}")
    return seeds


def resolve_config(dataset: str, root: str = ".") -> tuple:
    """``avdigits`` -> ``(avdigits, <MMF dataset key>, projects/mla/configs/avdigits.yaml)``;
    a path to a YAML file is used as it is."""
    if dataset.endswith((".yaml", ".yml")):
        path = dataset
    else:
        path = os.path.join(CONFIG_DIR, f"{dataset}.yaml")
    if not os.path.isfile(os.path.join(root, path)):
        known = (
            sorted(
                f[:-5]
                for f in os.listdir(os.path.join(root, CONFIG_DIR))
                if f.endswith(".yaml") and f not in ("defaults.yaml",)
            )
            if os.path.isdir(os.path.join(root, CONFIG_DIR))
            else []
        )
        raise FileNotFoundError(
            f"no experiment config for dataset {dataset!r}: {os.path.join(root, path)} does not exist "
            f"(run from the repository root; known: {', '.join(known) or 'none'})"
        )
    with open(os.path.join(root, path)) as f:
        spec = yaml.safe_load(f) or {}
    name = os.path.splitext(os.path.basename(path))[0]
    mmf_dataset = str(spec.get("datasets") or name).split(",")[0].strip()
    return name, mmf_dataset, path


def plan(
    datasets: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    missing_rates: Sequence[float],
    out: str,
    ablation: bool = False,
    overrides: Sequence[str] = (),
    root: str = ".",
    train_masks: Sequence[tuple] = (),
    references: Sequence[str] = (),
) -> list[Cell]:
    """Every cell, in a stable order, without duplicates (the ablation's HGM-on DF-on
    corner is the ``mla`` cell).  ``train_masks`` (``(modality, ratio)`` pairs, Figure 2):
    given, every cell has one of them (a dimension next to η); a modality the experiment
    config does not list under ``multimodal.modalities`` is refused.  ``references``:
    Table 1's reference columns, ``probe`` (:mod:`~mla_plugin.analysis.probe`: one
    cell per data setting, at the first seed) and ``unimodal`` (one ``unimodal-<modality>``
    variant per modality of the dataset, every seed)."""
    unknown = [m for m in methods if not is_known_method(m)]
    if unknown:
        raise ValueError(
            f"unknown methods {unknown}; known: {KNOWN_METHODS}, or any registered model: "
            f"{[m for m in registered_models() if m not in KNOWN_METHODS]}"
        )
    bad = [r for r in references if r not in REFERENCES]
    if bad:
        raise ValueError(f"unknown references {bad}; known: {REFERENCES}")
    masks = [None] if not train_masks else list(dict.fromkeys(tuple(t) for t in train_masks))
    for r in missing_rates:
        if not 0.0 <= float(r) < 1.0:
            raise ValueError(f"missing rate {r} is not in [0, 1)")
    variants = [Variant(m) for m in methods]
    if ablation:
        variants += [v for v in ABLATION.values() if v not in variants]
    cells, seen, names = [], set(), {}
    for entry in datasets:
        spec = parse_spec(entry)
        stem, mmf_dataset, config = resolve_config(spec.config, root)
        name, ds_overrides, data = describe(spec, stem, mmf_dataset, config, overrides, root)
        if name in names and names[name][:3] != (config, data.get("dir"), ds_overrides):
            raise ValueError(
                f"datasets {names[name][3]!r} and {spec.text!r} would both be named {name!r} "
                f"(data folders {names[name][1]} and {data.get('dir')}); give one a name, "
                f"e.g. {spec.config}:name=OTHER"
            )
        names[name] = (config, data.get("dir"), ds_overrides, spec.text)
        check_mask_modalities(masks, config, root)
        extra = []
        if UNIMODAL in references:
            extra += [
                Variant(UNIMODAL, m, ((f"model_config.{UNIMODAL}.modality", m),))
                for m in dataset_modalities(config, mmf_dataset, data, ds_overrides, root)
            ]
        if PROBE in references:
            extra.append(Variant(PROBE))
        for rate in missing_rates:
            for mask in masks:
                for variant in variants + [v for v in extra if v not in variants]:
                    for seed in seeds[:1] if variant.method == PROBE else seeds:
                        save_dir = os.path.join(
                            out, "runs", name, variant.name, setting_name(rate, mask), f"seed{seed}"
                        )
                        cell = Cell(
                            name,
                            mmf_dataset,
                            config,
                            variant,
                            int(seed),
                            float(rate),
                            save_dir,
                            tuple(overrides) + ds_overrides,
                            data,
                            mask,
                        )
                        if cell.key not in seen:
                            seen.add(cell.key)
                            cells.append(cell)
    return cells


def _listed_modalities(config: str, root: str = ".") -> list | None:
    """The experiment config's ``multimodal.modalities`` when it lists them, else None."""
    with open(os.path.join(root, config)) as f:
        spec = yaml.safe_load(f) or {}
    listed = (spec.get("multimodal") or {}).get("modalities")
    ref = re.fullmatch(r"\$\{([\w.]+)\}", str(listed))
    if ref:  # e.g. ${dataset_config.synthetic.modalities}, when the same file sets it
        listed = spec
        for key in ref.group(1).split("."):
            listed = listed.get(key) if isinstance(listed, dict) else None
    return listed if isinstance(listed, list) else None


def dataset_modalities(config: str, mmf_dataset: str, data, overrides=(), root=".") -> list:
    """The modalities a run of ``config`` trains on: its ``multimodal.modalities``, else
    the dataset's ``modalities`` setting, else (``features``) the ``x_<modality>`` keys of
    the data folder's ``train.npz``, in file order."""
    from mla_plugin.leaderboard.data import dataset_setting

    listed = _listed_modalities(config, root)
    if listed:
        return [str(m) for m in listed]
    setting = dataset_setting(os.path.join(root, config), mmf_dataset, "modalities", overrides)
    if isinstance(setting, str):
        setting = [m.strip() for m in setting.split(",") if m.strip()]
    if setting:
        return [str(m) for m in setting]
    folder = (data or {}).get("dir")
    train = os.path.join(folder, "train.npz") if folder else None
    if train and os.path.isfile(train):
        import zipfile

        with zipfile.ZipFile(train) as z:
            keys = [os.path.splitext(n)[0] for n in z.namelist()]
        return [k[2:] for k in keys if k.startswith("x_")]
    raise ValueError(
        f"references: cannot tell the modalities of {config} (no multimodal.modalities, no "
        f"dataset_config.{mmf_dataset}.modalities, no train.npz in its data folder {folder}); "
        "set one of them, or leave out the unimodal reference (--references probe)"
    )


def check_mask_modalities(masks, config: str, root: str = ".") -> None:
    """A ``--train-mask`` modality the experiment config's ``multimodal.modalities`` does not
    list is an error (when the config lists them; else ``mmf_run`` checks against the data)."""
    listed = _listed_modalities(config, root)
    if listed is None:
        return
    bad = sorted({m[0] for m in masks if m and m[0] not in listed})
    if bad:
        raise ValueError(
            f"--train-mask: modality {', '.join(bad)} is not one of {config}'s modalities "
            f"({', '.join(map(str, listed))})"
        )


def check_identities(cells: Sequence[Cell], limit: int = 5):
    """Refuse (ValueError) when a cell's folder holds a run of another identity: its
    results would be reported as this leaderboard's (e.g. another data folder's)."""
    conflicts = [c for c in (cell.conflict() for cell in cells) if c]
    if conflicts:
        raise ValueError(
            f"{len(conflicts)} run folder(s) hold runs of other settings or data, which would be "
            "reported as this leaderboard's; use another --out, give the dataset another name "
            "(--datasets CONFIG:name=NAME) or remove those folders:\n  "
            + "\n  ".join(conflicts[:limit])
            + (f"\n  ... and {len(conflicts) - limit} more" if len(conflicts) > limit else "")
        )


def mmf_run_path() -> str:
    """``$MLA_LEADERBOARD_MMF_RUN`` (a launcher taking mmf_run's arguments, e.g. a wrapper
    around torchrun), else the ``mmf_run`` next to this Python, else the one on PATH."""
    custom = os.environ.get("MLA_LEADERBOARD_MMF_RUN")
    if custom:
        return custom
    local = os.path.join(os.path.dirname(sys.executable), "mmf_run")
    if os.path.isfile(local):
        return local
    found = shutil.which("mmf_run")
    if not found:
        raise FileNotFoundError(
            "mmf_run not found next to this Python or on PATH (pip install mmf)"
        )
    return found


def _read_record(cell: Cell) -> dict | None:
    try:
        with open(cell.record_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def child_env(jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, threads)
    return env


class Runner:
    """Runs cells in ``jobs`` parallel subprocesses (see the module docstring)."""

    def __init__(
        self,
        jobs: int = 1,
        mmf_run: str | None = None,
        progress: bool = True,
        log=None,
        gpus: Sequence[str] = (),
    ):
        self.jobs = max(1, int(jobs))
        # job slot k runs on GPU gpus[k % len(gpus)] (CUDA_VISIBLE_DEVICES), if any are given
        self.gpus = [str(g) for g in gpus]
        self._slots: queue.Queue[int] = queue.Queue()
        for k in range(self.jobs):
            self._slots.put(k)
        self.mmf_run = mmf_run or mmf_run_path()
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.env = child_env(self.jobs)
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False
        # added to every cell.json this runner writes (a SLURM job's id and node)
        self.record_extra: dict = {}

    def _lock_cell(self, cell: Cell) -> int | None:
        """Open and lock ``cell.lock_path``; wait while another process (an ``mmf_run``
        left running by a killed leaderboard) holds it.  None if stopped meanwhile."""
        fd = os.open(cell.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if not waiting:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    self.log(
                        f"waiting for {cell.key}: an earlier run (pid {holder}) still holds "
                        f"{cell.lock_path}"
                    )
                    waiting = True
                if self._stopping:
                    os.close(fd)
                    return None
                time.sleep(LOCK_POLL_SECONDS)

    def run_cell(self, cell: Cell) -> Result:
        os.makedirs(cell.save_dir, exist_ok=True)
        lock = self._lock_cell(cell)
        if lock is None:
            return Result(cell, False, 0.0, None, "not started (interrupted)")
        try:
            if cell.done():  # finished by an mmf_run that outlived the leaderboard that started it
                record = _read_record(cell)
                if record and "ok" not in record:
                    atomic_write_json(
                        dict(
                            record,
                            ok=True,
                            returncode=None,
                            note="finished after its leaderboard was killed",
                        ),
                        cell.record_path,
                    )
                return Result(cell, True, 0.0, skipped=True)
            return self._run_locked(cell, lock)
        finally:
            os.close(lock)

    def _run_locked(self, cell: Cell, lock: int) -> Result:
        cmd = cell.command(self.mmf_run)
        record = {
            "identity": cell.identity,
            "data": cell.data,
            "dataset": cell.dataset,
            "mmf_dataset": cell.mmf_dataset,
            "config": cell.config,
            "method": cell.variant.method,
            "variant": cell.variant.name,
            "variant_overrides": [f"{k}={v}" for k, v in cell.variant.overrides],
            "overrides": list(cell.overrides),
            "seed": cell.seed,
            "missing_rate": cell.missing_rate,
            "train_mask": list(cell.train_mask) if cell.train_mask else None,
            "command": cmd,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **self.record_extra,
        }
        # written before the run starts (without "ok": running or interrupted), completed after
        atomic_write_json(record, cell.record_path)
        start = time.time()
        with open(cell.log_path, "ab") as log:
            log.write(("\n$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            slot = self._slots.get()
            env = self.env
            if self.gpus:
                env = dict(env, CUDA_VISIBLE_DEVICES=self.gpus[slot % len(self.gpus)])
                record["gpu"] = env["CUDA_VISIBLE_DEVICES"]
            try:
                with self._lock:
                    if self._stopping:
                        return Result(cell, False, 0.0, None, "not started (interrupted)")
                    # the run inherits the lock, so it stays held while the run lives
                    proc = subprocess.Popen(
                        cmd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        env=env,
                        pass_fds=(lock,),
                    )
                    self._procs[proc.pid] = proc
                    os.ftruncate(lock, 0)
                    os.pwrite(lock, str(proc.pid).encode(), 0)
                try:
                    returncode = proc.wait()
                finally:
                    with self._lock:
                        self._procs.pop(proc.pid, None)
            finally:
                self._slots.put(slot)
        seconds = time.time() - start
        ok = returncode == 0 and cell.done()
        record.update(seconds=round(seconds, 2), returncode=returncode, ok=ok)
        atomic_write_json(record, cell.record_path)
        tail = "" if ok else _tail(cell.log_path)
        if returncode == 0 and not ok:
            tail += "\n(mmf_run exited 0 but wrote no metrics.json)"
        return Result(cell, ok, seconds, returncode, tail)

    def stop(self):
        """Terminate the running subprocesses (ours, by pid)."""
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def run(self, cells: Iterable[Cell], on_result=None) -> list[Result]:
        """Run the unfinished cells; ``on_result(result)`` is called (in this thread)
        after each cell that ran."""
        cells = list(cells)
        todo = [c for c in cells if not c.done()]
        results = [Result(c, True, 0.0, skipped=True) for c in cells if c.done()]
        if results:
            self.log(
                f"{len(results)} of {len(cells)} runs already finished (skipped); "
                f"{len(todo)} to run with {self.jobs} job(s)"
            )
        if not todo:
            return results
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(cells),
            initial=len(results),
            unit="run",
            desc="leaderboard",
            disable=not self.progress,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        # The first run of each dataset goes alone (alongside other datasets' first runs):
        # it builds the dataset's caches (e.g. avdigits' fbank) once instead of in every job.
        by_dataset: dict[str, list[Cell]] = {}
        for c in todo:
            by_dataset.setdefault(c.dataset, []).append(c)
        first = [cells_[0] for cells_ in by_dataset.values()]
        rest = {ds: cells_[1:] for ds, cells_ in by_dataset.items()}
        if self.jobs == 1:
            first, rest = todo, {}
        failures = 0
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = {pool.submit(self.run_cell, c) for c in first}
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    res = fut.result()
                    results.append(res)
                    futures |= {
                        pool.submit(self.run_cell, c) for c in rest.pop(res.cell.dataset, [])
                    }
                    bar.update(1)
                    if on_result is not None and not res.skipped:
                        on_result(res)
                    if not res.ok:
                        failures += 1
                        bar.set_postfix(failed=failures)
                        tqdm.write(
                            f"\nFAILED {res.cell.key} (exit {res.returncode}, "
                            f"{res.seconds:.0f} s); log {res.cell.log_path}, last lines:\n"
                            + "\n".join("    " + line for line in res.log_tail.splitlines())
                            + "\n",
                            file=sys.stderr,
                        )
        except KeyboardInterrupt:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            raise
        pool.shutdown(wait=True)
        bar.close()
        return results
