"""The run folder of a run whose ``env.save_dir`` is left at MMF's default, and the move
of MMF's log files into it, and :func:`open_record`, which picks the save_dir, locks it,
checks a resume against it and writes the snapshot (docs/reliability.md "Runs as records
and resume checks").

With ``env.save_dir`` left at MMF's default (``${oc.env:MMF_SAVE_DIR, ./save}`` in
mla_bridge/defaults.yaml, MMF_SAVE_DIR unset) each run gets its own folder
``./save/<dataset>/<model>/<YYYYmmdd-HHMMSS>-<hash>``, ``<hash>`` the first 8 hex digits
of the sha256 of the run's result-affecting config
(:func:`mla_plugin.trainers.records.result_config`).  ``checkpoint.resume`` with the
default resumes the newest folder of that dataset and model whose hash is this config's
and that holds a checkpoint, or starts a new one when there is none.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mla_plugin.trainers.records import (
    RunRecordError,
    config_hash,
    lock_save_dir,
    resolved,
    variant,
)
from mla_plugin.trainers.resume_checks import check_fresh, check_resume, write_snapshot

DEFAULT_SAVE_DIR = "${oc.env:MMF_SAVE_DIR, ./save}"


def save_dir_is_default(config: DictConfig) -> bool:
    """``env.save_dir`` is MMF's default interpolation and MMF_SAVE_DIR is unset."""
    raw = OmegaConf.to_container(config.env, resolve=False).get("save_dir")
    return raw == DEFAULT_SAVE_DIR and "MMF_SAVE_DIR" not in os.environ


def run_folder(config: DictConfig, dataset: str, resume: bool) -> tuple[str, str]:
    """The default run folder for ``config`` and how it was chosen (``new`` or
    ``resumed``): with ``resume`` the newest ``<stamp>-<hash>`` folder of this config's
    hash that holds a checkpoint, else a new one (created here, so two runs started in the same second
    get two folders)."""
    root = os.path.abspath(os.path.join(str(config.env.save_dir), dataset, str(config.model)))
    digest = config_hash(resolved(config))
    if resume:
        found = sorted(glob.glob(os.path.join(glob.escape(root), f"*-{digest}")))
        found = [d for d in found if any(_has(d, n) for n in ("current.ckpt", "best.ckpt"))]
        if found:
            return found[-1], "resumed"
    os.makedirs(root, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = os.path.join(root, f"{stamp}-{digest}" if n == 1 else f"{stamp}.{n}-{digest}")
        try:
            os.mkdir(path)
            return path, "new"
        except FileExistsError:
            continue
    raise RunRecordError(f"{root}: no free run folder name for {stamp}-{digest}")


def _has(folder: str, name: str) -> bool:
    return os.path.isfile(os.path.join(folder, name))


def move_log_files(writer: Any, old_dir: str, new_dir: str) -> list[str]:
    """Point the file handlers of MMF's ``Logger`` (``writer``; built by ``mmf_run``
    before the trainer, so on MMF's default save_dir) that write under ``old_dir`` at the
    same files under ``new_dir`` (``train.log``, ``logs/train_<time>.log``); a file left
    empty in ``old_dir`` is removed.  Returns the new paths."""
    import logging

    old_root = os.path.abspath(old_dir) + os.sep
    new_root = os.path.abspath(new_dir)
    loggers = {
        id(lg): lg
        for lg in (getattr(writer, a, None) for a in ("_logger", "_warnings_logger"))
        if isinstance(lg, logging.Logger)
    }
    moved: dict[str, logging.FileHandler] = {}
    for lg in loggers.values():
        for handler in list(lg.handlers):
            path = getattr(handler, "baseFilename", None)
            if not isinstance(handler, logging.FileHandler) or not path:
                continue
            rel = path[len(old_root) :] if path.startswith(old_root) else ""
            if rel != "train.log" and not (
                rel.startswith("logs" + os.sep) and rel.count(os.sep) == 1
            ):
                continue  # not one of the Logger's own files of old_dir
            if path not in moved:
                target = os.path.join(new_root, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                replacement = logging.FileHandler(target, mode="a")
                replacement.setFormatter(handler.formatter)
                replacement.setLevel(handler.level)
                moved[path] = replacement
            lg.removeHandler(handler)
            handler.close()
            lg.addHandler(moved[path])
    _remove_empty(moved, old_root)
    return [h.baseFilename for h in moved.values()]


def _file_handlers(writer: Any, directory: str) -> list:
    """``(logger, handler)`` of the file handlers of MMF's ``Logger`` (``writer``) that
    write under ``directory``."""
    import logging

    root = os.path.abspath(directory) + os.sep
    out = []
    for lg in {id(g): g for g in (getattr(writer, a, None) for a in LOGGERS)}.values():
        if isinstance(lg, logging.Logger):
            for handler in list(lg.handlers):
                path = getattr(handler, "baseFilename", "") or ""
                if isinstance(handler, logging.FileHandler) and path.startswith(root):
                    out.append((lg, handler))
    return out


LOGGERS = ("_logger", "_file_only_logger", "_warnings_logger")


def release_log_files(writer: Any, save_dir: str) -> None:
    """A run refused at start leaves no trace in ``save_dir``: detach and close the log
    files MMF's ``Logger`` opened there, and remove those left empty (and ``logs/``)."""
    paths = set()
    for lg, handler in _file_handlers(writer, save_dir):
        lg.removeHandler(handler)
        handler.close()
        paths.add(handler.baseFilename)
    _remove_empty(paths, save_dir)


def _remove_empty(paths, root: str) -> None:
    """Remove the log files of ``paths`` left empty, then ``root/logs`` if left empty."""
    for path in paths:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            os.unlink(path)
    try:
        os.rmdir(os.path.join(root, "logs"))  # only when left empty
    except OSError:
        pass


def reopen_log_files(writer: Any, save_dir: str, aside: str) -> None:
    """After the old run was moved from ``save_dir`` to ``aside``, MMF's log files of this
    run start afresh at their paths in ``save_dir``; the ones this run had opened there,
    still empty, are removed from ``aside``."""
    for _, handler in _file_handlers(writer, save_dir):
        path = handler.baseFilename
        os.makedirs(os.path.dirname(path), exist_ok=True)
        old = handler.setStream(open(path, "a", encoding=handler.encoding))
        if old is not None:
            old.close()
        moved = os.path.join(aside, os.path.relpath(path, save_dir))
        if os.path.isfile(moved) and os.path.getsize(moved) == 0:
            os.unlink(moved)


def open_record(config, writer, rank: int, world: int, run_type: str) -> tuple[str, dict]:
    """Choose the save_dir, lock it, check a resume against it and write the config
    snapshot (rank 0; every rank gets the same save_dir, or the same error).  Sets
    ``env.save_dir``; returns the save_dir and the run's variant switches."""
    import torch.distributed as dist
    from mmf.common.registry import registry
    from mmf.utils.configuration import get_mmf_env
    from omegaconf import open_dict

    ckpt = config.checkpoint
    train = "train" in run_type
    answer: list = [None, None, []]  # save_dir, error, lines to log
    save_dir = get_mmf_env(key="save_dir")
    if rank == 0:
        try:
            if save_dir_is_default(config):
                dataset = str(config.datasets).split(",")[0]
                default = save_dir
                save_dir, how = run_folder(config, dataset, bool(ckpt.resume) and train)
                lock_save_dir(save_dir)
                move_log_files(writer, default, save_dir)
                answer[2].append(f"run folder ({how}): {save_dir}")
            lock_save_dir(save_dir)  # (re-entrant: held already for a run folder)
            answer[0] = save_dir
        except RunRecordError as e:
            answer[1] = str(e)
            release_log_files(writer, save_dir)
    if world > 1:
        dist.broadcast_object_list(answer, src=0)
    if answer[1]:
        raise RunRecordError(answer[1])
    save_dir = answer[0]
    with open_dict(config.env):
        config.env.save_dir = save_dir  # get_mmf_env and everything after it see it
    record_config = resolved(config)
    switches_ = variant(record_config, str(config.model))
    if rank == 0 and train:
        try:
            if ckpt.resume:
                answer[2] += check_resume(save_dir, record_config, bool(ckpt.resume_best))
            else:  # a new run never overwrites one (checkpoint.overwrite moves it aside)
                aside = check_fresh(save_dir, bool(ckpt.overwrite))
                if aside:
                    reopen_log_files(writer, save_dir, aside)
                    answer[2].append(
                        f"checkpoint.overwrite: moved the run in {save_dir} aside to {aside}"
                    )
            configuration = registry.get("configuration", no_warning=True)
            opts = getattr(getattr(configuration, "args", None), "opts", None) or []
            write_snapshot(save_dir, record_config, list(opts))
        except RunRecordError as e:
            answer[1] = str(e)
            release_log_files(writer, save_dir)
    if world > 1:
        dist.broadcast_object_list(answer, src=0)
    if answer[1]:
        raise RunRecordError(answer[1])
    for line in answer[2]:
        writer.write(line)
    return save_dir, switches_
