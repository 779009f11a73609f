"""A leaderboard cell: one ``mmf_run`` of one dataset × method variant × data setting ×
seed, its identity (what determines its result) and its files.

A cell writes into ``<out>/runs/<dataset name>/<variant>/<setting>/seed<s>/`` (its
``save_dir``): MMF's ``metrics.json`` and checkpoints, ``run.log`` (stdout and stderr),
``cell.json`` (:meth:`Cell.identity`, the command, and once it ended its wall time and exit
status) and, for the methods given to ``--gap-methods``, ``gap.json`` (the modality gap,
computed inside the cell after its run).  ``<setting>`` is ``eta<η>``, plus
``-mask_<modality><ratio>`` with a training mask (Figure 2).  The variant is named by
:func:`~mla_plugin.utils.variants.variant_name` (``mla``, ``mla[hgm=off]``, in
``cell.json``); its folder writes ``=`` as ``-`` (``mla[hgm-off]``, :attr:`Variant.folder`).

A cell whose ``metrics.json`` exists and whose stored identity equals its own is done; a
folder holding a run of another identity is never reused (:meth:`Cell.conflict`).
This module imports neither torch nor MMF.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys

from mla_plugin.leaderboard.methods import PROBE, Variant, selection_variant

LOG_TAIL_LINES = 40
GAP_FILE = "gap.json"
PROBE_MODULE = "mla_plugin.analysis.probe"
GAP_MODULE = "mla_plugin.analysis.gap"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_json(path: str) -> dict | None:
    """A JSON file's object, None when it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tail(path: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when absent)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def config_argument(config: str) -> str:
    """The ``config=`` a cell's command passes: as planned (``projects/mla/configs/x.yaml``)
    when that path exists from here, else the repository's copy (so the leaderboard runs
    from any working directory while a cell's identity stays the same)."""
    if os.path.isabs(config) or os.path.isfile(config):
        return config
    candidate = os.path.join(REPO_ROOT, config)
    return candidate if os.path.isfile(candidate) else config


def same_file_config(identity: dict) -> dict:
    """``identity`` with its config as the file it names (real path), so one config named
    relatively (``projects/mla/configs/x.yaml``) or absolutely (as an installed copy of the
    package named the repository's configs before) is one identity."""
    config = identity.get("config")
    if not isinstance(config, str):
        return identity
    return dict(identity, config=os.path.realpath(config_argument(config)))


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
    # the methods whose cells compute the modality gap after their run (--gap-methods);
    # not part of the identity (an analysis of the run, not of what it trained)
    gap_methods: tuple = dataclasses.field(default=(), compare=False)
    # extra environment of its run, (name, value) pairs: a tuning trial's identity
    # (mla_plugin.utils.trial); not part of the identity
    env: tuple = dataclasses.field(default=(), compare=False)
    # --selections: the run's protocol.selection (val, test_max), or None for the config's;
    # a test selection's folder and key carry ``@test_max``
    selection: str | None = None

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
            **({"selection": self.selection} if self.selection else {}),
        }

    def stored_identity(self) -> dict | None:
        return (self.record() or {}).get("identity")

    def conflict(self) -> str | None:
        """Why this cell's folder cannot be used (it holds a run of another identity, or a
        finished run without one), else None."""
        record = self.record()
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
        stored, mine = same_file_config(stored), same_file_config(self.identity)
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
        return f"{self.dataset}/{self.column}/{self.setting}/seed{self.seed}"

    @property
    def column(self) -> str:
        """The variant's folder, ``@<selection>`` added for a run selected on test."""
        return column_folder(self.variant.folder, self.selection)

    def given_selection(self) -> str | None:
        """The model selection the leaderboard gives the run: its ``selection``, else the
        last ``protocol.selection`` override; None: the experiment config's."""
        given = [o for o in self.overrides if o.startswith("protocol.selection=")]
        return self.selection or (given[-1].partition("=")[2] if given else None)

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

    def record(self) -> dict | None:
        """The cell's ``cell.json`` (None when absent or unreadable)."""
        return read_json(self.record_path)

    def gap_command(self) -> list[str] | None:
        """The cell's analysis step after its run: the modality gap (``gap.json``) for the
        methods in ``gap_methods``; None for the others."""
        if self.variant.method not in self.gap_methods:
            return None
        return [sys.executable, "-W", "ignore::UserWarning", "-m", GAP_MODULE, "--save-dir",
                self.save_dir]  # fmt: skip

    @property
    def gap_path(self) -> str:
        return os.path.join(self.save_dir, GAP_FILE)

    def needs_analysis(self) -> bool:
        """Its analysis step (the modality gap) is due and has not written its file."""
        return self.gap_command() is not None and not os.path.isfile(self.gap_path)

    def done(self) -> bool:
        """Finished, by a run of this very identity."""
        stored = self.stored_identity()
        return (
            os.path.isfile(self.metrics_path)
            and stored is not None
            and same_file_config(stored) == same_file_config(self.identity)
        )

    def command(self, mmf_run: str) -> list[str]:
        config = config_argument(self.config)
        if self.variant.method == PROBE:  # the linear probes: no training, same data
            cmd = [sys.executable, "-m", PROBE_MODULE, f"config={config}"]
            cmd += [f"training.seed={self.seed}", f"env.save_dir={self.save_dir}"]
        else:
            cmd = [
                mmf_run,
                f"config={config}",
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
        if self.selection and self.variant.method != PROBE:
            cmd.append(f"protocol.selection={self.selection}")
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


def column_folder(folder: str, selection: str | None) -> str:
    """A variant's run folder under a selection: ``concat`` (val, or the config's own),
    ``concat@test_max`` (selected on test), as the reports name its variant."""
    return selection_variant(folder, selection)


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
