"""``best.ckpt`` holds the selected weights and what selection needs; ``current.ckpt`` the
full resumable state."""

import os

import torch

from mla_plugin.trainers.checkpointing import BEST_KEYS
from tests.support import QUICK, make_trainer


def test_best_ckpt_is_weights_only_and_smaller_than_current(save_dir):
    trainer = make_trainer(save_dir, *QUICK, "training.max_epochs=2")
    trainer.train()
    best_path, current_path = (os.path.join(save_dir, n) for n in ("best.ckpt", "current.ckpt"))
    best = torch.load(best_path, weights_only=False)
    current = torch.load(current_path, weights_only=False)
    assert tuple(best) == BEST_KEYS == ("model", "counts", "best", "config")
    assert not {"optimizer", "lr_scheduler", "hooks", "rng"} & set(best)
    assert {"optimizer", "lr_scheduler", "hooks", "rng"} <= set(current)
    assert best["best"]["update"] == best["counts"]["num_updates"] > 0
    assert best["best"]["epoch"] == best["counts"]["epoch"]
    assert best["config"]["model"] == "mla"
    assert os.path.getsize(best_path) < os.path.getsize(current_path)
    # the selected weights are what the run restored and scored at the end
    final = torch.load(os.path.join(save_dir, "mla_final.pth"))
    assert all(torch.equal(best["model"][k], final[k]) for k in final)
