"""CML (mla_plugin/core/cml.py, mla_plugin/models/cml.py): subset confidences and the two
hinges, by hand; the subsets the paper and BalanceBenchmark compare."""

import math

import pytest
import torch

from mla_plugin.core.cml import (
    batch_sum_hinge,
    confidence,
    nested_pairs,
    per_sample_hinge,
    removal_chain,
)
from tests.support import make_trainer


def test_confidence_is_the_top_probability():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])
    assert confidence(logits).tolist() == pytest.approx([0.75, 0.8])


def test_card_example_per_sample_vs_batch_sum():
    # card 10: (conf_full, conf_part) = (0.7, 0.9) and (0.8, 0.5)
    full, part = torch.tensor([0.7, 0.8]), torch.tensor([0.9, 0.5])
    # per sample: max(0, 0.2) + max(0, -0.3) = 0.2, averaged over the 2 samples
    assert float(per_sample_hinge(part, full)) == pytest.approx(0.1)
    # BalanceBenchmark sums first: max(0, 0.2 - 0.3) = 0
    assert float(batch_sum_hinge(part, full)) == 0.0


def test_subsets_compared():
    av = frozenset("av")
    assert set(nested_pairs(["a", "v"])) == {(av, frozenset("a")), (av, frozenset("v"))}
    pairs = nested_pairs(["a", "b", "c"])
    assert len(pairs) == 3 + 3 * 2  # the full set minus one, then each pair minus one
    assert all(small < large and len(large - small) == 1 for large, small in pairs)
    assert removal_chain(["v", "a", "t"]) == [frozenset("vat"), frozenset("at"), frozenset("t")]


TINY = [
    "model=cml",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=16",
]


def test_model_loss_is_ce_plus_lambda_times_the_hinges(tmp_path):
    trainer = make_trainer(str(tmp_path / "paper"), *TINY, "model_config.cml.cml_lambda=0.5")
    model = trainer.model
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    out = model(batch)
    h, W, b = out["features"], model.head.fc.weight, model.head.fc.bias
    s = model.feature_dim
    # a subset's logits: the head with the other modality's features zeroed, whole bias
    alone = {"strong": h["strong"] @ W[:, :s].t() + b, "weak": h["weak"] @ W[:, s:].t() + b}
    full = out["scores"]
    for m in alone:
        assert torch.allclose(model.subset_logits(h, None, frozenset([m])), alone[m], atol=1e-6)
    ce = torch.nn.functional.cross_entropy(full, batch.targets)
    reg = sum(torch.relu(confidence(alone[m]) - confidence(full)).mean() for m in alone)
    loss = next(model.training_steps(batch, 0)).loss
    assert loss.item() == pytest.approx((ce + 0.5 * reg).item(), rel=1e-6)

    bb = make_trainer(str(tmp_path / "bb"), *TINY, "model_config.cml.cml_variant=balancebenchmark")
    (hook,) = bb.model.training_hooks()
    hook.on_train_epoch_start(3, 4)
    first = list(bb.model.cml_order)
    hook.on_train_epoch_start(3, 4)
    assert bb.model.cml_order == first  # the epoch's order is a function of seed and epoch
    orders = set()
    for epoch in range(1, 9):
        hook.on_train_epoch_start(epoch, 4)
        orders.add(tuple(bb.model.cml_order))
    assert len(orders) == 2  # both orders of two modalities occur
    bb.model.load_state_dict(model.state_dict())
    removed, kept = bb.model.cml_order
    z_full, z_part = bb.model(batch)["scores"], bb.model.subset_logits(h, None, frozenset([kept]))
    ce_bb = (
        torch.nn.functional.cross_entropy(z_full, batch.targets)
        + torch.nn.functional.cross_entropy(z_part, batch.targets)
    ) / 2
    reg_bb = torch.relu((confidence(z_part) - confidence(z_full)).sum())
    bb_loss = next(bb.model.training_steps(batch, 0)).loss
    assert float(bb_loss) == pytest.approx(float(ce_bb + 0.1 * reg_bb), rel=1e-6)
    with pytest.raises(Exception, match="cml_variant"):
        make_trainer(str(tmp_path / "bad"), *TINY, "model_config.cml.cml_variant=sign")
