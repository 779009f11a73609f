"""Runs in one process (a warm leaderboard worker, tests) do not stack MMF's log
handlers: each run's ``train.log`` holds its own lines and none of a later run's, and
each line is written once (issue 26)."""

import os

from mmf.common.registry import registry

from tests.support import make_trainer

TINY = [
    "model=concat",
    "training.max_epochs=1",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=64",
    "dataset_config.synthetic.sizes.test=64",
]


def test_each_run_in_one_process_gets_its_own_train_log(tmp_path):
    folders = []
    for seed in (11, 12, 13):
        registry.mapping["state"].pop("writer", None)  # as mmf_run: a new Logger per run
        folder = str(tmp_path / f"seed{seed}")
        make_trainer(folder, *TINY, f"training.seed={seed}").train()
        folders.append(folder)
    for seed, folder in zip((11, 12, 13), folders, strict=True):
        log = open(os.path.join(folder, "train.log")).read()
        starts = [line for line in log.splitlines() if "Training concat on synthetic" in line]
        assert len(starts) == 1 and starts[0].endswith(f"seed {seed}"), starts
        assert log.count("test multi") == 1
