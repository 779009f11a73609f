"""OGM, OPM, Greedy, PMR and MMCosine through the trainer, in process: their switches do
what they say, and each reads three modalities with missing ones (issue 23: M >= 3).
Their rules' numbers are tests/core/test_{ogm_ge,opm,greedy,pmr,mmcosine}.py's."""

import math

import pytest
import torch

from mla_plugin.core.hooks import Step
from tests.support import make_trainer, read_metrics, three_modality_yaml

TINY = [
    "dataset_config.synthetic.sizes.train=128",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",  # 4 batches per epoch
]
# every mechanism on from the first epoch (three modalities)
ACTIVE = {
    "ogm": [],
    # others_sum rarely finds a modality above the other two together early on
    "opm": ["model_config.opm.opm_warmup_epochs=0", "model_config.opm.opm_extension=mean_others"],
    "greedy": ["model_config.greedy.greedy_start_epoch=0"],
    "pmr": [],
    "mmcosine": [],
}


def _trainer(tmp_path, method, *opts, config=None):
    extra = {} if config is None else {"config": config}
    return make_trainer(str(tmp_path), f"model={method}", *TINY, *opts, **extra)


def _hook(trainer, name):
    return next(h for h in trainer.ctx.hooks if h.name == name)


@pytest.mark.parametrize("method", sorted(ACTIVE))
def test_three_modalities_with_missing(method, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(three_modality_yaml())
    save = tmp_path / "run"
    trainer = _trainer(save, method, "training.max_epochs=1", *ACTIVE[method], config=str(config))
    trainer.train()
    metrics = read_metrics(str(save))
    assert set(metrics["test"]) == {"multi", "a", "b", "c"}
    summary = metrics.get("hooks", {}) or {}
    if method == "opm":
        assert _hook(trainer, "opm").summary()["epochs"][0]["modulated"] > 0, summary
    if method == "greedy":
        assert _hook(trainer, "greedy").speed.bdr().keys() == {"a", "b", "c"}


def test_ogm_is_ogm_ge_without_noise(tmp_path):
    trainer = _trainer(tmp_path, "ogm", "model_config.ogm.ogm_alpha=0.3")
    hook = _hook(trainer, "ogm")
    assert hook.ge is False and hook.alpha == 0.3
    encoders = trainer.ctx.model.encoders
    for p in trainer.ctx.model.parameters():
        p.grad = torch.ones_like(p)
    # card: s_a = 1.5, s_v = 0.5 (two samples at p = 0.75 and 0.25), alpha 0.3 -> rho_a = 3,
    # k_a = 1 - tanh(0.9) = 0.28370; the gradients are scaled exactly, nothing added
    strong, weak = encoders.keys()
    uni = {
        strong: torch.tensor([[math.log(3.0), 0.0]] * 2),
        weak: torch.tensor([[0.0, math.log(3.0)]] * 2),
    }
    step = Step(loss=torch.tensor(0.0), outputs={"modality_scores": uni}, epoch=1)
    step.batch = {"targets": torch.tensor([0, 0])}
    hook.on_before_optimizer_step(step)
    assert hook.last_coefficients[strong] == pytest.approx(0.28370, abs=1e-5)
    for p in encoders[strong].parameters():
        assert torch.allclose(p.grad, torch.full_like(p, 1 - math.tanh(0.9)))
    for p in encoders[weak].parameters():
        assert torch.equal(p.grad, torch.ones_like(p))


def test_ogm_start_epoch_switch(tmp_path):
    # BalanceBenchmark's start (epoch 10): nothing modulated in a 2-epoch run
    trainer = _trainer(
        tmp_path, "ogm", "training.max_epochs=2", "model_config.ogm.ogm_start_epoch=10"
    )
    trainer.train()
    assert _hook(trainer, "ogm").summary() == []
    trainer = _trainer(tmp_path / "paper", "ogm", "training.max_epochs=1")
    trainer.train()
    assert [e["epoch"] for e in _hook(trainer, "ogm").summary()] == [1]


def test_opm_warmup_and_p_exe(tmp_path):
    trainer = _trainer(
        tmp_path, "opm", "training.max_epochs=2", "model_config.opm.opm_warmup_epochs=1"
    )
    trainer.train()
    first, second = _hook(trainer, "opm").summary()["epochs"]
    assert first["modulated"] == 0 and first["mean_q"] == {"strong": 0.0, "weak": 0.0}
    assert second["modulated"] > 0 and second["mean_q"]["strong"] > 0
    trainer = _trainer(
        tmp_path / "never", "opm", "training.max_epochs=1",
        "model_config.opm.opm_warmup_epochs=0", "model_config.opm.opm_p_exe=0",
    )  # fmt: skip
    trainer.train()
    assert _hook(trainer, "opm").summary()["epochs"][0]["modulated"] == 0


def test_greedy_start_epoch_and_window(tmp_path):
    trainer = _trainer(
        tmp_path, "greedy", "training.max_epochs=2", "model_config.greedy.greedy_start_epoch=1"
    )
    trainer.train()
    first, second = _hook(trainer, "greedy").summary()["epochs"]
    assert sum(first["rebalancing"].values()) == 0  # before the start epoch
    assert sum(second["rebalancing"].values()) > 0  # the speeds differ on synthetic
    trainer = _trainer(
        tmp_path / "off", "greedy", "training.max_epochs=1",
        "model_config.greedy.greedy_start_epoch=0", "model_config.greedy.greedy_window=0",
    )  # fmt: skip
    trainer.train()
    assert sum(_hook(trainer, "greedy").summary()["epochs"][0]["rebalancing"].values()) == 0


def test_pmr_prototypes_once_per_epoch(tmp_path):
    trainer = _trainer(tmp_path, "pmr", "training.max_epochs=2")
    trainer.train()
    hook = _hook(trainer, "pmr")
    assert hook.computed_for == 2
    protos = hook.prototypes
    assert set(protos) == {"strong", "weak"} and protos["strong"].shape[0] == 10
    hook.on_train_epoch_start(2, 4)  # a resume inside epoch 2 keeps them
    assert hook.prototypes is protos
    # the weaker modality's prototypical CE was on (the strong one dominates synthetic)
    mean_beta = [e["mean_beta"] for e in hook.summary()["epochs"]]
    assert all(b["weak"] > b["strong"] for b in mean_beta)


@pytest.mark.parametrize(
    "method, override, key",
    [
        ("opm", "opm_q_base=1.5", "model_config.opm.opm_q_base"),
        ("opm", "opm_extension=pairs", "model_config.opm.opm_extension"),
        ("greedy", "greedy_window=-1", "model_config.greedy.greedy_"),
        ("pmr", "pmr_coefficient=linear", "model_config.pmr.pmr_coefficient"),
        ("mmcosine", "mmcosine_scale=0", "model_config.mmcosine.mmcosine_scale"),
    ],
)
def test_bad_switch_is_refused_before_training(method, override, key, tmp_path):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        _trainer(tmp_path, method, f"model_config.{method}.{override}")
