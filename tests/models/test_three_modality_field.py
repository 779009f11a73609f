"""MMPareto, LFM and InfoReg read M >= 3 (each encoder's own Pareto rule; alignment pairs
averaged; the top-scoring modality against the mean of the others) and train with absent
modalities, in process on three-modality synthetic."""

import json

import pytest
import torch

from tests.support import make_trainer, three_modality_yaml

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",
    "training.max_epochs=1",
]


@pytest.mark.parametrize("method", ["mmpareto", "lfm", "inforeg"])
def test_three_modalities_with_missing(method, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml())
    save = tmp_path / "save"
    trainer = make_trainer(str(save), f"model={method}", *TINY, config=str(config))
    mask = torch.cat([b["mask"] for b in trainer.ctx.train_loader])
    assert not bool(mask.all())
    trainer.train()
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["modalities"] == ["a", "b", "c"]
    assert set(metrics["test"]) == {"multi", "a", "b", "c"}
    summary = metrics[method]
    if method == "mmpareto":
        assert set(summary["conflict_rate"]) == {"a", "b", "c"}
    elif method == "inforeg":
        assert sum(n for counts in summary["regulated_steps"].values() for n in counts) == 2
    else:
        assert len(summary["alpha"]) == 1
