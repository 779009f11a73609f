"""One run's log lines in one run's files, when several runs share a process (a warm
leaderboard worker, tests).

MMF's ``Logger`` adds a ``FileHandler`` for ``logs/train_<time>.log`` and one for
``train.log`` under its save_dir, and a ``StreamHandler`` on stdout, to the ``mmf.train``
and ``py.warnings`` loggers, and never takes them away: in one process a second run's
lines would also go to the first run's files, and each line would print once per earlier
run.  :func:`keep_run_handlers` (the trainer, at ``load``) drops every MMF handler but the
current writer's; :func:`close_run_handlers` (a worker, after a run) drops them all."""

from __future__ import annotations

import logging
import os

MMF_FORMAT = "%(asctime)s | %(levelname)s | %(name)s : %(message)s"  # MMF's Logger's


def _mmf_handlers():
    """(logger, handler) for each handler an MMF ``Logger`` added (by its format), on any
    logger (``mmf.train`` under mmf_run, ``mmf.utils.logger`` unnamed, ``py.warnings``)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in list(logger.handlers):
            fmt = getattr(handler.formatter, "_fmt", None)
            if fmt == MMF_FORMAT:
                yield logger, handler


def _drop(logger: logging.Logger, handler: logging.Handler) -> None:
    logger.removeHandler(handler)
    if isinstance(handler, logging.FileHandler):
        handler.close()


def keep_run_handlers(writer) -> None:
    """Drop the handlers earlier runs' Loggers left: file handlers writing outside this
    writer's files, and all but the newest stream handler of each logger."""
    files = {getattr(writer, "log_filename", None)}
    save_dir = getattr(writer, "save_dir", None)
    if save_dir:
        files.add(os.path.join(save_dir, "train.log"))
    files = {os.path.abspath(f) for f in files if f}
    newest_stream: dict[str, logging.Handler] = {}
    for logger, handler in _mmf_handlers():
        if isinstance(handler, logging.FileHandler):
            if os.path.abspath(handler.baseFilename) not in files:
                _drop(logger, handler)
        elif isinstance(handler, logging.StreamHandler):
            older = newest_stream.get(logger.name)
            if older is not None:
                _drop(logger, older)
            newest_stream[logger.name] = handler


def close_run_handlers() -> None:
    """Drop (and close) every handler MMF's Loggers added."""
    for logger, handler in _mmf_handlers():
        _drop(logger, handler)
