"""The fusion rules as MMF fusions: same numbers as the core functions, no MMF name
shadowed, chosen by name in MLA's config, QMF fused by its registered energy rule."""

import inspect

import mmf.modules.fusions as mmf_fusions
import pytest
import torch
from mmf.common.registry import registry

from mla_plugin.core import fusion
from mla_plugin.core.qmf import qmf_fuse
from mla_plugin.models import fusions
from tests.support import make_trainer

MAPPING = registry.mapping["fusion_name_mapping"]


def _logits(seed=0, m=3, b=6, c=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, b, c, generator=g) * 3


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    "name,rule,mode",
    [
        ("mla_entropy", "entropy", "per_sample"),
        ("mla_entropy_code_batch_dim0", "entropy", "code_batch_dim0"),
        ("mla_mean", "mean", "per_sample"),
        ("mla_fixed", "fixed", "per_sample"),
    ],
)
def test_registered_rules_give_the_core_numbers(name, rule, mode, masked):
    logits = _logits()
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]])
    present = present.bool() if masked else None
    params = {"weights": None, "num_modalities": 3} if rule == "fixed" else {}
    built = fusions.build_fusion(fusions.mla_fusion_name(rule, mode), **params)
    assert type(built) is MAPPING[name]
    fused, weights = built(dict(zip("atv", logits, strict=True)), present)
    expect, expect_w = fusion.fuse(
        logits, rule=rule, entropy_mode=mode, present=present, return_weights=True
    )
    assert torch.equal(fused, expect) and torch.equal(weights, expect_w)


def test_qmf_energy_is_qmf_fuse():
    logits = _logits(1, m=2)
    uni = {"a": logits[0].requires_grad_(), "v": logits[1]}
    present = torch.tensor([[1, 1], [0, 1], [1, 0], [1, 1], [1, 1], [0, 1]]).bool()
    rule = fusions.build_fusion("qmf_energy", temperature=10.0, detach=True)
    fused, weights = rule(uni, present)
    expect, expect_w = qmf_fuse(uni, present, temperature=10.0, detach=True)
    assert torch.equal(fused, expect)
    assert torch.equal(weights, torch.stack([expect_w["a"], expect_w["v"]], dim=1))


def test_no_mmf_fusion_is_shadowed():
    """Every fusion mmf/modules/fusions.py registers still resolves to MMF's class after
    ``import mla_plugin``; ours all carry a plugin prefix; taking a used name is refused."""
    mmf_names = {n for n, cls in MAPPING.items() if cls.__module__ == mmf_fusions.__name__}
    registered_in_source = set()
    for _, cls in inspect.getmembers(mmf_fusions, inspect.isclass):
        registered_in_source |= {n for n, c in MAPPING.items() if c is cls}
    assert {"concat_mlp", "linear_sum", "block", "mutan", "mcb"} <= mmf_names
    assert registered_in_source == mmf_names
    ours = set(fusions.registered_rules())
    assert {"mla_entropy", "mla_entropy_code_batch_dim0", "mla_mean", "mla_fixed"} <= ours
    assert "qmf_energy" in ours and not ours & mmf_names
    assert all(n.startswith(fusions.PREFIXES) for n in ours)
    with pytest.raises(ValueError, match="already registered"):
        fusions.register_fusion("mla_entropy")(type("Other", (fusions.FusionRule,), {}))
    with pytest.raises(ValueError, match="must start with"):
        fusions.register_fusion("concat_mlp")(type("Other", (fusions.FusionRule,), {}))
    with pytest.raises(ValueError, match="fuses features, not unimodal logits"):
        fusions.build_fusion("concat_mlp")
    with pytest.raises(ValueError, match=r"'nope' is not registered; .*mla_entropy, "):
        fusions.build_fusion("nope")


def test_mla_calls_its_rule_through_the_registry(tmp_path):
    """``fusion: fixed`` maps to the registered ``mla_fixed``; a rule registered by the
    user is chosen by its name; a name that is neither is refused naming the key."""
    trainer = make_trainer(
        str(tmp_path / "fixed"), "model_config.mla.fusion=fixed", "training.max_epochs=1"
    )
    model = trainer.model.eval()
    assert model.fusion_name == "mla_fixed" and type(model.fusion_rule) is MAPPING["mla_fixed"]
    batch = next(iter(trainer.ctx.train_loader))
    with torch.no_grad():
        out = model(batch)
    stacked = torch.stack([out["modality_scores"][m] for m in model.modalities])
    assert torch.equal(out["scores"], fusion.fuse(stacked, rule="fixed", entropy_mode="per_sample"))

    @fusions.register_fusion("mla_test_first")
    class First(fusions.FusionRule):
        def weights(self, logits, present):
            w = torch.zeros(logits.shape[1], logits.shape[0])
            w[:, 0] = 1
            return w

    try:
        custom = make_trainer(str(tmp_path / "custom"), "model_config.mla.fusion=mla_test_first")
        with torch.no_grad():
            out = custom.model.eval()(batch)
        first = custom.model.modalities[0]
        assert torch.equal(out["scores"], out["modality_scores"][first])
        with pytest.raises(
            ValueError, match=r"model_config.mla.fusion: 'qmf_energy': .*temperature"
        ):
            make_trainer(str(tmp_path / "bad"), "model_config.mla.fusion=qmf_energy")
    finally:
        del MAPPING["mla_test_first"]


def test_qmf_model_fuses_with_qmf_energy(tmp_path):
    trainer = make_trainer(str(tmp_path), "model=qmf", "training.max_epochs=1")
    assert type(trainer.model.head.fuse) is MAPPING["qmf_energy"]
