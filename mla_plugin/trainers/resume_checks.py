"""The config snapshot of a training run and the checks a resume makes before it trusts a
save_dir (docs/reliability.md "Runs as records and resume checks").

- **Snapshot.**  ``config.yaml`` (the resolved config) and ``overrides.yaml`` (the
  command-line options) are written atomically at start of a training run.
- **Resume checks.**  The saved config is compared with the new one (every key but
  :data:`~mla_plugin.trainers.records.RESUME_MAY_CHANGE`); a save_dir with best.ckpt but
  no current.ckpt, and an unreadable checkpoint, are refused with how to proceed.
- **No overwrite.**  A new run (no ``checkpoint.resume``) into a save_dir that holds a
  run, finished or started, is refused; ``checkpoint.overwrite=True`` moves that run aside
  to ``<save_dir>.replaced-<time>/`` first (:func:`check_fresh`).
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

import torch
import yaml

from mla_plugin.trainers.records import RunRecordError, config_differences
from mla_plugin.utils.io import atomic_write_text

CONFIG_NAME = "config.yaml"
OVERRIDES_NAME = "overrides.yaml"
RUN_FILES = ("metrics.json", "current.ckpt", "best.ckpt", "*_final.pth")
"""What a save_dir holds once a training run has started in it (metrics.json: finished).
``config.yaml`` alone is no run: it is written at load, so a run stopped before its first
checkpoint (a bad value found at load, a kill in its first epoch) leaves nothing to lose."""
KEEP_IN_PLACE = (".lock",)
"""Left in the save_dir when a run is moved aside (the lock this process holds)."""


def run_files(save_dir: str) -> list[str]:
    """The names of :data:`RUN_FILES` present in ``save_dir``."""
    found = []
    for pattern in RUN_FILES:
        found += sorted(glob.glob(os.path.join(glob.escape(save_dir), pattern)))
    return [os.path.basename(p) for p in found]


def check_fresh(save_dir: str, overwrite: bool) -> str | None:
    """Before a new training run (no ``checkpoint.resume``): refuse a save_dir that holds
    a run (:class:`RunRecordError` naming it and the ways on), or with ``overwrite`` move
    that run aside.  Returns the folder it was moved to (None: nothing was there)."""
    found = run_files(save_dir)
    if not found:
        return None
    state = "finished" if "metrics.json" in found else "started"
    if not overwrite:
        raise RunRecordError(
            f"env.save_dir {save_dir} already holds a {state} run ({', '.join(found)}); a "
            "new run there would overwrite it. Continue that run with checkpoint.resume=True, "
            "or start this one in another env.save_dir (or leave env.save_dir unset for a new "
            "run folder); checkpoint.overwrite=True moves the old run aside to "
            f"{save_dir}.replaced-<time>/ first"
        )
    return move_aside(save_dir)


def move_aside(save_dir: str) -> str:
    """Move everything in ``save_dir`` but :data:`KEEP_IN_PLACE` into a new sibling
    folder ``<save_dir>.replaced-<YYYYmmdd-HHMMSS>`` (``.2``, ... when taken); returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        aside = f"{save_dir.rstrip(os.sep)}.replaced-{stamp}" + (f".{n}" if n > 1 else "")
        try:
            os.mkdir(aside)
            break
        except FileExistsError:
            continue
    else:
        raise RunRecordError(f"{save_dir}: no free name to move the old run aside")
    for name in sorted(os.listdir(save_dir)):
        if name not in KEEP_IN_PLACE:
            os.rename(os.path.join(save_dir, name), os.path.join(aside, name))
    return aside


def write_snapshot(save_dir: str, config: dict, overrides: list[str]) -> None:
    """``config.yaml`` (resolved) and ``overrides.yaml`` (command-line options)."""
    atomic_write_text(
        yaml.safe_dump(config, sort_keys=False, default_flow_style=False),
        os.path.join(save_dir, CONFIG_NAME),
    )
    atomic_write_text(
        yaml.safe_dump([str(o) for o in overrides], default_flow_style=False),
        os.path.join(save_dir, OVERRIDES_NAME),
    )


def saved_config(save_dir: str) -> tuple[dict | None, str | None]:
    """The saved config of a save_dir and where it came from: config.yaml, else the
    config of current.ckpt or best.ckpt (runs from before config.yaml); (None, None)."""
    path = os.path.join(save_dir, CONFIG_NAME)
    if os.path.isfile(path):
        with open(path) as f:
            try:
                return yaml.safe_load(f), path
            except yaml.YAMLError as e:
                raise RunRecordError(
                    f"{path} is not valid YAML ({e}); it records the run being resumed. "
                    "Restore it, or start a fresh run in another env.save_dir"
                ) from None
    for name in ("current.ckpt", "best.ckpt"):
        ckpt = os.path.join(save_dir, name)
        if os.path.isfile(ckpt):
            state = read_checkpoint(ckpt)
            if isinstance(state, dict) and isinstance(state.get("config"), dict):
                return state["config"], ckpt
    return None, None


def read_checkpoint(path: str) -> Any:
    """``torch.load`` of ``path`` on the CPU; an unreadable file is a
    :class:`RunRecordError` naming it and how to recover."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, bad pickle, ...
        name = os.path.basename(path)
        other = (
            "resume from best.ckpt instead (checkpoint.resume_best=True: its weights, counts "
            "and selection; optimizer, scheduler, hooks and RNGs start afresh)"
            if name == "current.ckpt"
            else "delete it to let the run select afresh from here on, or resume an earlier copy"
        )
        raise RunRecordError(
            f"checkpoint {path} is truncated or corrupt and cannot be read "
            f"({reason(e)}). To recover: {other}; or start a fresh run in another env.save_dir"
        ) from None


def reason(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` of ``error``, its first line only, and when that is long cut
    after a whole sentence (never mid-sentence), with "..." for what was left out."""
    lines = str(error).strip().splitlines() or [""]
    text, more = lines[0].strip(), len(lines) > 1
    if len(text) > limit:
        end = text.rfind(". ", 0, limit)
        text, more = (text[: end + 1] if end > 0 else text), True
    return f"{type(error).__name__}: {text}" + (" ..." if more else "")


def check_resume(save_dir: str, config: dict, resume_best: bool) -> list[str]:
    """Before a ``checkpoint.resume``: refuse a changed config, best.ckpt without
    current.ckpt, and an unreadable checkpoint (:class:`RunRecordError`).  Returns the
    lines to log (what the resume will do)."""
    current, best = (os.path.join(save_dir, n) for n in ("current.ckpt", "best.ckpt"))
    old, source = saved_config(save_dir)
    if old is not None:
        diffs = config_differences(old, config)
        if diffs:
            raise RunRecordError(
                f"checkpoint.resume: the config differs from the one {save_dir} was "
                f"trained with ({source}) in keys that affect results (old -> new):\n  "
                + "\n  ".join(diffs)
                + "\nResume with the saved values, or start a fresh run in another "
                "env.save_dir (or leave env.save_dir unset for a new run folder)"
            )
    has_current, has_best = os.path.isfile(current), os.path.isfile(best)
    if has_best and not has_current and not resume_best:
        raise RunRecordError(
            f"checkpoint.resume: {save_dir} holds best.ckpt but no current.ckpt, so the run "
            "cannot continue exactly, and starting afresh would overwrite best.ckpt. "
            "Either continue from the selected weights with checkpoint.resume_best=True "
            "(optimizer, scheduler, hooks and RNGs start afresh), or start a fresh run in "
            "another env.save_dir (or leave it unset for a new run folder)"
        )
    if resume_best and not has_best:
        raise RunRecordError(
            f"checkpoint.resume_best: {save_dir} holds no best.ckpt"
            + (" (it has current.ckpt: drop checkpoint.resume_best)" if has_current else "")
        )
    for path, present in ((current, has_current), (best, has_best)):
        if present:
            read_checkpoint(path)
    if has_current or has_best:
        return []
    return [f"checkpoint.resume: {save_dir} holds no checkpoint yet; starting the run afresh"]
