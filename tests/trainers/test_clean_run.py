"""A normal run logs nothing the user cannot act on, and ``metrics.json`` records each
split's majority-class baseline (what the leaderboard calls chance)."""

import glob
import os
import re

import pytest
import torch

from mla_plugin.trainers.evaluation import majority
from tests.support import make_trainer, read_metrics, run_cli

# MMF's logger writes a warning as "<time> | WARNING | <logger> : ..."; Python's warnings
# module prints "<file>:<line>: UserWarning: ..." (any *Warning category) to stderr.
WARNING_LINE = re.compile(r"\| WARNING \||\b[A-Za-z]*Warning: ")


def test_majority_counts_the_samples_each_accuracy_counts():
    targets = torch.tensor([2, 1, 2, 0, 1, 2])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 0], [0, 0]], dtype=torch.bool)
    record = majority(targets, mask, ["a", "b"])
    assert record == {
        "class": 2,
        "samples": 6,
        "rate": {
            "multi": pytest.approx(3 / 6),
            "a": pytest.approx(2 / 5),
            "b": pytest.approx(2 / 3),
        },
    }
    # a tie goes to the smallest class; one-hot targets are read by their argmax
    one_hot = torch.nn.functional.one_hot(torch.tensor([1, 0, 1, 0]), 3)
    record = majority(one_hot, torch.ones(4, 1, dtype=torch.bool), ["a"])
    assert record["class"] == 0 and record["rate"] == {"multi": 0.5, "a": 0.5}
    # a modality no sample has: no rate
    assert majority(targets, torch.zeros(6, 1, dtype=torch.bool), ["a"])["rate"]["a"] is None


def test_warning_pattern_matches_what_mmf_and_python_print():
    assert WARNING_LINE.search("2026-12-01T21:30:15 | WARNING | py.warnings : x.py:1: y")
    assert WARNING_LINE.search("/m/configuration.py:526: UserWarning: Device specified is")
    assert not WARNING_LINE.search("Logging to: /tmp/test_demo_run_logs_no_warning_0/x.log")


@pytest.mark.subprocess
def test_demo_run_logs_no_warning_and_records_the_majority_class(tmp_path):
    """``mmf_run`` of the demo config (avdigits), as the README runs it, shortened."""
    save = str(tmp_path / "save")
    proc = run_cli(
        "mmf_run",
        [
            "config=projects/mla/configs/avdigits.yaml",
            f"env.save_dir={save}",
            "training.max_epochs=1",
            "dataset_config.avdigits.max_per_class=6",
            f"dataset_config.avdigits.cache_dir={tmp_path / 'cache'}",
        ],
    )
    (log_file,) = glob.glob(os.path.join(save, "logs", "train_*.log"))
    logged = open(log_file).read()
    assert "Training mla on avdigits" in proc.stdout and "Training mla on avdigits" in logged
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr), ("log", logged)):
        warnings = [line for line in text.splitlines() if WARNING_LINE.search(line)]
        assert warnings == [], f"{name}: {warnings}"

    m = read_metrics(save)
    # max_per_class=6: 6 clips of each of the 10 digits per split, so the majority class is
    # digit 0 (the smallest of a ten-way tie) at 10 % of every split and modality
    for split in ("val", "test"):
        assert m["majority"][split]["class"] == 0
        assert m["majority"][split]["samples"] == 60
        assert m["majority"][split]["rate"] == {"multi": 0.1, "audio": 0.1, "image": 0.1}


def test_an_unknown_device_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"training.device: 'tpu' is not one of auto, cuda, cpu"):
        make_trainer(str(tmp_path / "save"), "training.device=tpu")
