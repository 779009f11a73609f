"""TensorBoard scalars for ``training.tensorboard: true`` (rank 0 only): the
``tensorboard`` callback (Lightning's ``TensorBoardLogger`` with ``LearningRateMonitor``'s
place; MMF main's ``LogisticsCallback`` writes its scalars).

Event files go to ``env.tensorboard_logdir`` when set, else ``<save_dir>/tensorboard``.
Per epoch: ``train/loss`` (the epoch's mean step loss), ``val/<name>`` for every
validation accuracy (``multi`` and each modality), and ``<hook>/<key>`` for the latest
value of each list in a hook's :meth:`~mla_plugin.core.hooks.TrainingHook.summary`
(MLA's ``hgm/trace_p``, trace(P)/s), after the epoch's validation.  Off, every call is a
no-op.
"""

import os

from mla_plugin.core.hooks import TrainingHook, register_hook


class TensorBoardLog:
    def __init__(self, enabled: bool, logdir: str | None, save_dir: str, rank: int):
        self.writer = None
        self.logdir = logdir or os.path.join(save_dir, "tensorboard")
        if enabled and rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=self.logdir)

    def log_epoch(self, epoch: int, train_loss: float, val: dict, summaries: dict) -> None:
        if self.writer is None:
            return
        self.writer.add_scalar("train/loss", train_loss, epoch)
        for name, value in val.items():
            if value is not None:
                self.writer.add_scalar(f"val/{name}", value, epoch)
        for hook, summary in summaries.items():
            for key, values in summary.items():
                if isinstance(values, list) and values:
                    self.writer.add_scalar(f"{hook}/{key}", values[-1], epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@register_hook("tensorboard", callback=True)
class TensorBoardCallback(TrainingHook):
    """:class:`TensorBoardLog` of the run: one set of scalars per whole epoch, closed when
    the run ends."""

    def setup(self, ctx) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.log = TensorBoardLog(
            cfg.training.tensorboard, cfg.env.tensorboard_logdir, ctx.save_dir, ctx.rank
        )

    def on_train_epoch_end(self, epoch: int) -> None:
        ctx = self.ctx
        self.log.log_epoch(epoch, ctx.last_train_loss, ctx.last_val, ctx.hook_summaries())

    def on_fit_end(self) -> None:
        self.log.close()
