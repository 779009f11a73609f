"""Table-2 methods CPM-Net and TATE: their mechanisms on hand-computed tiny inputs, three
modalities with missing ones in-process, and the ``metrics.json`` of ``mmf_run`` at missing
rates 0 and 0.5 (too small to learn: learning is tests/models/test_learns.py's contract)."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch

from mla_plugin.core.hooks import Step
from mla_plugin.core.partial_views import (
    PartialViewHead,
    PrototypeHook,
    class_means,
    class_scores,
    reconstruction_loss,
    structured_loss,
)
from mla_plugin.core.tag_transformer import (
    TagTransformer,
    hide_present,
    imagination_loss,
    missing_tag,
)
from tests.support import (
    QUICK,
    SYNTHETIC,
    make_trainer,
    read_metrics,
    run_cli,
    three_modality_yaml,
)

METHODS = ["cpm_net", "tate"]


# ------------------------------------------------------------------ CPM-Net mechanism
def test_cpm_structured_loss_hand_computed():
    # h1=(1,0) y=0, h2=(0,1) y=1, h3=(1,1) y=0: mu_0=(1,.5), mu_1=(0,1)
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    means, counts = class_means(h, y, 2)
    torch.testing.assert_close(means, torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    assert counts.tolist() == [2.0, 1.0]
    # E_{h~T(y)} h^T h_n by brute force over the class members
    hn = h.numpy()
    brute = np.array(
        [
            [np.mean([hn[j] @ hn[n] for j in range(3) if y[j] == c]) for c in (0, 1)]
            for n in range(3)
        ]
    )
    torch.testing.assert_close(class_scores(h, means), torch.tensor(brute, dtype=torch.float32))
    # scores rows: (1, 0), (.5, 1), (1.5, 1); margins max_y [Δ + s_y - s_true]:
    # n1: max(0, 1 + 0 - 1) = 0; n2: max(0, 1 + .5 - 1) = .5; n3: max(0, 1 + 1 - 1.5) = .5
    assert structured_loss(h, y, 2).item() == pytest.approx(1.0 / 3.0)


def test_cpm_structured_loss_ignores_classes_absent_from_batch():
    # h1=(.5,0) y=0, h2=(-.5,0) y=1: scores (.25, -.25) and (-.25, .25), margin 1 - .5 = .5
    h = torch.tensor([[0.5, 0.0], [-0.5, 0.0]])
    y = torch.tensor([0, 1])
    assert structured_loss(h, y, 2).item() == pytest.approx(0.5)
    # a third class with no sample must not enter the max (it would give 1 + 0 - .25 = .75)
    assert structured_loss(h, y, 3).item() == pytest.approx(0.5)


def test_cpm_reconstruction_only_on_present_views():
    recon = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[1.0, 1.0], [3.0, 0.0]]], requires_grad=True)
    target = torch.tensor([[[0.0, 0.0], [9.0, 9.0]], [[1.0, 0.0], [1.0, 0.0]]])
    present = torch.tensor([[True, False], [True, True]])
    # sample 1: view 1 only, ||(1,2)||^2 = 5; sample 2: ||(0,1)||^2 + ||(2,0)||^2 = 5 -> mean 5
    loss = reconstruction_loss(recon, target, present)
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    assert bool((recon.grad[0, 1] == 0).all()) and bool((recon.grad[0, 0] != 0).all())


def test_cpm_latent_ignores_absent_views_three_modalities():
    torch.manual_seed(0)
    head = PartialViewHead(["a", "b", "c"], dim=3, latent_dim=2, num_classes=2)
    feats = {m: torch.randn(2, 3) for m in "abc"}
    present = torch.tensor([[True, False, True], [False, True, False]])
    h = head.latent(feats, present)
    changed = dict(feats, b=feats["b"].clone())
    changed["b"][0] += 100.0  # sample 0 lacks b
    torch.testing.assert_close(head.latent(changed, present)[0], h[0])
    # sample 1 has only b: h = A_b z_b
    torch.testing.assert_close(h[1], head.encoders["b"](feats["b"][1]))
    expected0 = (head.encoders["a"](feats["a"][0]) + head.encoders["c"](feats["c"][0])) / 2
    torch.testing.assert_close(h[0], expected0)


def test_cpm_prototypes_are_the_epochs_class_means():
    head = PartialViewHead(["a", "b"], dim=2, latent_dim=2, num_classes=2)
    hook = PrototypeHook(head)
    batches = [
        (torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])),
        (torch.tensor([[3.0, 0.0], [0.0, 4.0], [5.0, 5.0]]), torch.tensor([0, 1, 1])),
    ]
    for i, (latent, y) in enumerate(batches):
        step = Step(
            loss=torch.zeros(()),
            outputs={"latent": latent},
            batch={"targets": y},
            batch_index=i,
            num_batches=2,
        )
        hook.on_after_optimizer_step(step)
        if i == 0:  # not before the epoch's last batch
            assert bool((head.prototypes == 0).all())
    torch.testing.assert_close(head.prototypes, torch.tensor([[2.0, 0.0], [5 / 3, 11 / 3]]))
    assert bool((hook.counts == 0).all())  # reset for the next epoch
    # nearest class by mu_y^T h
    out = head({"a": torch.zeros(1, 2), "b": torch.zeros(1, 2)}, torch.ones(1, 2, dtype=bool))
    torch.testing.assert_close(out["scores"], out["latent"] @ head.prototypes.t())


def test_cpm_prototype_hook_state_resumes_mid_epoch():
    head = PartialViewHead(["a", "b"], dim=2, latent_dim=2, num_classes=2)
    hook = PrototypeHook(head)
    first = Step(
        loss=torch.zeros(()),
        outputs={"latent": torch.tensor([[2.0, 0.0], [0.0, 2.0]])},
        batch={"targets": torch.tensor([0, 1])},
        batch_index=0,
        num_batches=2,
    )
    hook.on_after_optimizer_step(first)
    resumed = PrototypeHook(head)
    resumed.load_state_dict(hook.state_dict())  # the partial sums travel with the checkpoint
    last = dataclasses.replace(first, batch_index=1, outputs={"latent": torch.zeros(2, 2)})
    resumed.on_after_optimizer_step(last)
    torch.testing.assert_close(head.prototypes, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


# ------------------------------------------------------------------ TATE mechanism
def test_tate_tag_vector():
    present = torch.tensor([[True, False, True], [True, True, True], [False, False, True]])
    assert missing_tag(present).tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]


def test_tate_hiding_keeps_one_modality():
    present = torch.tensor([[True, True, True], [True, False, False], [False, True, True]] * 4)
    visible = hide_present(present, 1.0, generator=torch.Generator().manual_seed(0))
    assert bool((visible <= present).all())  # a subset of the present ones
    hidden = (present & ~visible).sum(dim=1)
    assert hidden.tolist() == [1, 0, 1] * 4  # one hidden where >= 2 present, none otherwise
    assert torch.equal(hide_present(present, 0.0), present)


def test_tate_imagination_loss_hand_computed():
    recon = torch.tensor([[[1.0, 1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 4.0]]])
    target = torch.zeros(2, 2, 2)
    cells = torch.tensor([[True, False], [False, True]])
    # cells (0,0): (1+1)/2 = 1; (1,1): (0+16)/2 = 8 -> mean 4.5
    assert imagination_loss(recon, target, cells).item() == pytest.approx(4.5)
    assert imagination_loss(recon, target, torch.zeros(2, 2, dtype=bool)).item() == 0.0


def test_tate_missing_tokens_are_zeroed_and_tagged():
    torch.manual_seed(0)
    net = TagTransformer(3, 4, 2, layers=1, heads=2, ff_dim=8, dropout=0.0).eval()
    tokens = torch.randn(1, 3, 4)
    visible = torch.tensor([[True, False, True]])
    out = net(tokens, visible)
    changed = tokens.clone()
    changed[0, 1] += 50.0  # a missing modality's value never reaches the encoder
    torch.testing.assert_close(net(changed, visible)["logits"], out["logits"])
    zero_filled = tokens.clone()
    zero_filled[0, 1] = 0.0  # the same zero token, tagged present, gives another output
    assert not torch.allclose(
        net(zero_filled, torch.ones(1, 3, dtype=bool))["logits"], out["logits"]
    )
    with pytest.raises(ValueError, match="tate_heads=3 must divide"):
        TagTransformer(3, 4, 2, layers=1, heads=3, ff_dim=8, dropout=0.0)


# ------------------------------------------------------------------ in the trainer
THREE_YAML = three_modality_yaml(
    width=16,
    missing_rate=0.5,
    extra="    sizes: {train: 96, val: 64, test: 64}\ntraining:\n  max_epochs: 1\n  batch_size: 32\n",
)


@pytest.mark.parametrize("method", METHODS)
def test_three_modalities_with_missing_in_process(method, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(THREE_YAML)
    trainer = make_trainer(str(tmp_path / "save"), f"model={method}", config=str(config))
    trainer.ctx.train_sampler.set_epoch(0)
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    assert not bool(batch.mask.all())  # some modalities are missing
    step = next(trainer.model.training_steps(batch, 0))
    assert torch.isfinite(step.loss) and step.loss.requires_grad
    step.loss.backward()
    for m in "abc":  # every encoder gets a gradient from the method's loss
        grads = [p.grad for p in trainer.model.encoders[m].parameters()]
        assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), m
    if method == "tate":
        assert step.outputs["tate_forward"] > 0 and step.outputs["tate_backward"] > 0
    else:
        assert step.outputs["cpm_reconstruction"] > 0
    out = trainer.model(batch)
    assert out["scores"].shape == (batch.targets.shape[0], trainer.model.num_classes)
    assert out["modality_scores"] == {}


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("rate", [0.0, 0.5])
@pytest.mark.parametrize("method", METHODS)
def test_mmf_run_writes_metrics(method, rate, save_dir):
    epochs = 2
    run_cli(
        "mmf_run",
        [
            f"config={SYNTHETIC}",
            f"model={method}",
            f"env.save_dir={save_dir}",
            f"dataset_config.synthetic.missing_rate={rate}",
            *QUICK,
            f"training.max_epochs={epochs}",
        ],
        OMP_NUM_THREADS="1",
    )
    with open(os.path.join(save_dir, "metrics.json")) as f:
        json.loads(f.read(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    m = read_metrics(save_dir)
    assert m["method"] == method and m["modalities"] == ["strong", "weak"]
    assert 0 < m["selected_update"] <= epochs * math.ceil(512 / 64)
    for split in ("val", "test"):
        assert 0.0 <= m[split]["multi"] <= 1.0
        assert m[split]["strong"] is None and m[split]["weak"] is None  # no unimodal heads


@pytest.mark.parametrize(
    "option, message",
    [
        (
            "model_config.tate.tate_hide_prob=1.5",
            r"tate.tate_hide_prob = 1.5 is outside its declared range: .* \[0, 1\]",
        ),
        ("model_config.tate.tate_heads=5", r"tate_heads=5 must divide .* feature size 64"),
        (
            "model_config.cpm_net.cpm_latent_dim=0",
            r"cpm_latent_dim = 0 is outside its declared range: expected an integer in \[1, inf\)",
        ),
    ],
)
def test_bad_hyper_parameters_fail_before_training(option, message, tmp_path):
    model = option.split(".")[1]
    with pytest.raises(ValueError, match=message):
        make_trainer(str(tmp_path), f"model={model}", option)
