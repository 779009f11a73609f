"""Every run keeps its per-sample test predictions beside ``metrics.json``
(``test_predictions.npz``), and they reproduce the accuracies ``metrics.json`` reports."""

import os

import numpy as np
import pytest

from mla_plugin.trainers.results import PREDICTIONS_FILE
from tests.support import make_trainer, read_metrics

TINY = [
    "model=mla",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=48",
    "dataset_config.synthetic.missing_rate=0.4",
    "training.batch_size=16",
    "training.max_epochs=1",
]


def test_test_predictions_reproduce_the_reported_accuracies(tmp_path):
    save = str(tmp_path / "run")
    make_trainer(save, *TINY).train()
    metrics = read_metrics(save)
    with np.load(os.path.join(save, PREDICTIONS_FILE)) as f:
        p = dict(f)
    assert list(p["modalities"]) == metrics["modalities"] == ["strong", "weak"]
    assert sorted(p["index"]) == list(range(48))  # every test sample once
    assert p["scores"].shape[0] == 48 and (p["prediction"] == p["scores"].argmax(1)).all()
    hit = p["prediction"] == p["label"]
    assert hit.mean() == pytest.approx(metrics["test"]["multi"])
    for m in ("strong", "weak"):
        present = p[f"present_{m}"]
        assert 0 < present.sum() < 48  # missing_rate 0.4: some absent
        correct = p[f"prediction_{m}"][present] == p["label"][present]
        assert correct.mean() == pytest.approx(metrics["test"][m])
    # the majority class recorded in metrics.json is the labels' most frequent one
    assert np.bincount(p["label"]).argmax() == metrics["majority"]["test"]["class"]
