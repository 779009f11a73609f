"""trace(P)/s in metrics.json (the hooks' summaries) and TensorBoard event files read back."""

import glob
import os

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.support import QUICK, make_trainer, read_metrics


@pytest.mark.slow
def test_trace_in_metrics_and_scalars_in_tensorboard(tmp_path):
    save = str(tmp_path / "save")
    opts = [*QUICK, "training.max_epochs=2", "training.tensorboard=true"]
    trainer = make_trainer(save, *opts, "model_config.mla.hgm_mean=running")
    trainer.train()
    metrics = read_metrics(save)
    trace = metrics["hgm"]["trace_p"]
    assert len(trace) == 2 and all(0 < t < 1 for t in trace), trace
    assert trace == trainer.hooks[0].summary()["trace_p"]
    files = glob.glob(os.path.join(save, "tensorboard", "events.out.tfevents.*"))
    assert len(files) == 1, files
    events = EventAccumulator(files[0])
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/multi", "val/strong", "val/weak", "hgm/trace_p"} <= tags, tags
    tb_trace = [(e.step, e.value) for e in events.Scalars("hgm/trace_p")]
    assert tb_trace == [(1, pytest.approx(trace[0])), (2, pytest.approx(trace[1]))]
    assert [e.step for e in events.Scalars("val/weak")] == [1, 2]


def test_tensorboard_off_writes_nothing(tmp_path):
    save = str(tmp_path / "save")
    trainer = make_trainer(save, *QUICK, "training.max_epochs=1")
    tensorboard = next(c for c in trainer.ctx.callbacks if c.name == "tensorboard")
    assert tensorboard.log.writer is None
    trainer.train()
    assert not os.path.exists(os.path.join(save, "tensorboard"))
    assert len(read_metrics(save)["hgm"]["trace_p"]) == 1
