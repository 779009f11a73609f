"""A run whose training loss turns non-finite stops with an error naming the run and the
epoch, instead of training on and writing metrics of NaN weights (docs/reliability.md)."""

import os

import pytest

from tests.support import QUICK, make_trainer

SMALL = [*QUICK[:3], "training.max_epochs=3"]


@pytest.mark.parametrize("model", ["concat", "mla"])
def test_a_diverging_run_stops_with_a_clear_error(model, tmp_path):
    save = str(tmp_path / "save")
    # an absurd learning rate: the weights overflow within the first epoch
    trainer = make_trainer(save, f"model={model}", "optimizer.params.lr=1e30", *SMALL)
    with pytest.raises(FloatingPointError, match=rf"{model} on synthetic: the training loss"):
        trainer.train()
    assert trainer.ctx.epoch == 0  # stopped in the first epoch, not after all of them
    assert not os.path.exists(os.path.join(save, "metrics.json"))


def test_a_sane_run_is_not_stopped(tmp_path):
    save = str(tmp_path / "save")
    make_trainer(save, "model=concat", *SMALL).train()
    assert os.path.exists(os.path.join(save, "metrics.json"))
