"""Table 2's imputation methods AE, CRA, MMIN and IF-MMIN: their blocks and losses on tiny
hand-set examples (:mod:`mla_plugin.core.imagination`), their loss wiring in the models,
and training in-process (missing rates 0 and 0.5, and three modalities with missing) and
through ``mmf_run`` (too small to learn: learning is tests/models/test_learns.py's
contract)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from mla_plugin.core.imagination import (
    AutoEncoder,
    ResidualCascade,
    cmd,
    draw_missing_condition,
    fill_missing,
    masked_mse,
    pairwise_cmd,
    zero_filled,
)
from tests.support import SYNTHETIC, make_trainer, read_metrics, run_cli, three_modality_yaml

METHODS = ["ae", "cra", "mmin", "if_mmin"]
TINY = [
    "dataset_config.synthetic.sizes.train=128",
    "dataset_config.synthetic.sizes.val=64",
    "dataset_config.synthetic.sizes.test=64",
    "training.batch_size=32",
    "training.max_epochs=1",
]
THREE_YAML = three_modality_yaml(width=16)


def _set(linear, weight, bias):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float))


# ------------------------------------------------------------------ the blocks


def test_cmd_on_hand_computed_moments():
    # column 0: x = {0, 2} (mean 1, c2 = 1, c3 = 0, c4 = 1, c5 = 0),
    #           y = {1, 1, 4} (mean 2, deviations -1, -1, 2: c2 = 2, c3 = 2, c4 = 6, c5 = 10)
    x = torch.tensor([[0.0], [2.0]])
    y = torch.tensor([[1.0], [1.0], [4.0]])
    assert float(cmd(x, y, 1)) == pytest.approx(1.0)
    assert float(cmd(x, y, 3)) == pytest.approx(1 + 1 + 2)
    assert float(cmd(x, y, 5)) == pytest.approx(1 + 1 + 2 + 5 + 10)
    # a second column: constant 1 against constant 0 adds 1 to the mean difference only
    x2 = torch.cat([x, torch.ones(2, 1)], 1)
    y2 = torch.cat([y, torch.zeros(3, 1)], 1)
    assert float(cmd(x2, y2, 3)) == pytest.approx(2**0.5 + 1 + 2)
    assert float(cmd(x2, x2, 5)) == 0.0


def test_pairwise_cmd_uses_the_samples_holding_both():
    a = torch.tensor([[0.0], [2.0], [7.0]])
    b = torch.tensor([[1.0], [3.0], [9.0]])
    c = torch.tensor([[5.0], [5.0], [1.0]])
    present = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    # (a, b): rows 0, 1 -> means 1 vs 2, c2 1 vs 1 -> 1;  (b, c): rows 0, 2 -> means 5 vs 3,
    # c2 16 vs 4 -> 2 + 12 = 14;  (a, c): only row 0 -> left out
    assert float(pairwise_cmd([a, b, c], present, 2)) == pytest.approx((1 + 14) / 2)


def test_autoencoder_imputation_and_reconstruction_loss_by_hand():
    ae = AutoEncoder(4, [1])
    _set(ae.encoder[0], [[1, 1, 1, 1]], [0])
    _set(ae.decoder[0], [[1], [0], [-1], [2]], [0, 0, 0, 0])
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # M = 2 modalities of s = 2
    keep = torch.tensor([[True, False]])
    x = zero_filled(target, keep)
    assert x.tolist() == [[1, 2, 0, 0]]
    with torch.no_grad():
        recon, latent = ae(x)
    assert latent.tolist() == [[3]] and recon.tolist() == [[3, 0, -3, 6]]
    assert fill_missing(x, recon, keep).tolist() == [[1, 2, -3, 6]]
    both = torch.tensor([[True, True]])
    # ((3-1)^2 + (0-2)^2 + (-3-3)^2 + (6-4)^2) / 4
    assert float(masked_mse(recon, target, both)) == pytest.approx(12.0)
    assert float(masked_mse(recon, target, ~keep)) == pytest.approx((36 + 4) / 2)
    assert float(masked_mse(recon, target, torch.zeros_like(keep))) == 0.0


def test_residual_cascade_adds_each_blocks_residual():
    cra = ResidualCascade(2, [1], blocks=2)
    for block in cra.blocks:
        _set(block.encoder[0], [[1, 1]], [0])
        _set(block.decoder[0], [[1], [-1]], [0, 0])
    with torch.no_grad():
        out, latents = cra(torch.tensor([[1.0, 2.0]]))
    # block 1: relu(1 + 2) = 3 -> x1 = [1, 2] + [3, -3] = [4, -1]
    # block 2: relu(4 - 1) = 3 -> x2 = [4, -1] + [3, -3] = [7, -4]
    assert out.tolist() == [[7, -4]] and latents.tolist() == [[3, 3]]
    target = torch.tensor([[1.0, 2.0]])
    # one modality of s = 2: ((7-1)^2 + (-4-2)^2) / 2
    assert float(masked_mse(out, target, torch.tensor([[True]]))) == pytest.approx(36.0)


def test_cascade_conditioning_vector_enters_every_block():
    cra = ResidualCascade(1, [1], blocks=2, cond_dim=1)
    for block in cra.blocks:
        _set(block.encoder[0], [[0, 1]], [0])  # reads only the conditioning input
        _set(block.decoder[0], [[1]], [0])
    out, _ = cra(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert out.tolist() == [[5.0]]  # 1 + 2 + 2
    with pytest.raises(ValueError, match="cond_dim=1"):
        cra(torch.tensor([[1.0]]))


def test_missing_conditions_drop_a_proper_subset_of_the_present():
    g = torch.Generator().manual_seed(0)
    present = torch.tensor([[1, 1, 1]] * 600 + [[1, 0, 1]] * 300 + [[0, 1, 0]] * 5).bool()
    keep = draw_missing_condition(present, generator=g)
    assert not (keep & ~present).any()  # only present cells are kept
    assert keep.any(1).all()  # something is kept
    assert torch.equal(keep[-5:], present[-5:])  # one present modality: left as it is
    assert ((keep != present).any(1)[:-5]).all()  # the others always lose one
    # every non-empty proper subset of a complete sample is drawn
    assert len(torch.unique(keep[:600], dim=0)) == 6
    full = draw_missing_condition(present[:600], include_full=True, generator=g)
    assert len(torch.unique(full, dim=0)) == 7


# ------------------------------------------------------------------ the models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("imputation_models")
    return {
        m: make_trainer(str(root / m), f"model={m}", *TINY, "training.seed=3").model
        for m in ("mmin", "if_mmin")
    }


class _Identity(nn.Module):
    def forward(self, x):
        return x, x


def _tiny_imputation():
    """B = 2 samples, M = 2 modalities of s = 1: sample 0 complete, its 2nd modality
    dropped; sample 1 misses its 2nd modality in the data."""
    return {
        "target": torch.tensor([[1.0, 2.0], [3.0, 0.0]]),
        "imputed": torch.tensor([[5.0, 4.0], [6.0, 9.0]]),
        "keep": torch.tensor([[True, False], [True, False]]),
        "data_present": torch.tensor([[True, True], [True, False]]),
    }


def test_mmin_forward_and_backward_losses_by_hand(models):
    model = models["mmin"]
    model.backward_imputer = _Identity()  # the backward cascade returns its input
    assert model.recon_scale == "relative"  # the default: each MSE / its target's mean square
    terms = model.imputation_loss(_tiny_imputation())
    # forward: (4 - 2)^2 / 2^2; backward: ((1 + 9) / 2) / ((1^2 + 3^2) / 2)
    assert float(terms["forward"]) == pytest.approx(1.0 * model.lambda_forward)
    assert float(terms["backward"]) == pytest.approx(1.0 * model.lambda_backward)
    model.recon_scale = "absolute"  # the papers' plain MSE
    try:
        terms = model.imputation_loss(_tiny_imputation())
    finally:
        model.recon_scale = "relative"
    # forward: only the dropped cell (0, 1) has a target: (4 - 2)^2
    assert float(terms["forward"]) == pytest.approx(4.0 * model.lambda_forward)
    # backward input = imagined only (kept slots zeroed) -> 0 at the kept cells (0,0), (1,0)
    assert float(terms["backward"]) == pytest.approx((1 + 9) / 2 * model.lambda_backward)


def test_if_mmin_invariant_and_cmd_terms(models):
    model = models["if_mmin"]
    imp = _tiny_imputation()
    imp["guide"] = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    imp["full_invariant"] = torch.tensor([[2.0, 3.0], [0.0, 0.0]])
    imp["invariant"] = [
        torch.tensor([[0.0, 1.0], [2.0, 3.0]]),
        torch.tensor([[1.0, 1.0], [1.0, 1.0]]),
    ]
    terms = model.imputation_loss(imp)
    # relative (the default): forward 4 / 2^2; L_inv stays the plain MSE (2.5, below)
    assert float(terms["invariant"]) == pytest.approx(2.5 * model.lambda_invariant)
    assert float(terms["forward"]) == pytest.approx(1.0 * model.lambda_forward)
    model.recon_scale = "absolute"
    try:
        terms = model.imputation_loss(imp)
    finally:
        model.recon_scale = "relative"
    assert set(terms) == {"forward", "cmd", "invariant"}  # no backward term by default
    assert float(terms["forward"]) == pytest.approx(4.0 * model.lambda_forward)
    # L_inv on sample 0 only (the one the condition dropped from): ((1-2)^2 + (1-3)^2) / 2
    assert float(terms["invariant"]) == pytest.approx(2.5 * model.lambda_invariant)
    # both modalities are present only in sample 0: fewer than two samples -> no CMD pair
    assert float(terms["cmd"]) == 0.0


def test_if_mmin_invariant_features_lie_in_the_unit_interval_cmd_assumes(models):
    """CMD without its 1/|b-a|^k factors assumes features in an interval of length 1: the
    default sigmoid keeps u_m in [0, 1] however large the encoders' features are (an
    unbounded ReLU overflowed the 5th moment on avdigits)."""
    model = models["if_mmin"]
    huge = {m: 1e4 * torch.randn(16, model.feature_dim) for m in model.modalities}
    u = [model.invariant_encoder(huge[m]) for m in model.modalities]
    assert all(bool(((x >= 0) & (x <= 1)).all()) for x in u)
    cmd = pairwise_cmd(u, torch.ones(16, len(u), dtype=torch.bool), model.cmd_moments)
    # each moment difference is at most 2 per dimension on [0, 1]
    assert torch.isfinite(cmd) and float(cmd) <= 2 * model.cmd_moments * model.invariant_dim**0.5


def test_if_mmin_invariant_activation_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"model_config\.if_mmin\.invariant_activation"):
        make_trainer(
            str(tmp_path), "model=if_mmin", "model_config.if_mmin.invariant_activation=tanh"
        )


def test_unknown_choice_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"model_config\.mmin\.train_conditions must be one of"):
        make_trainer(str(tmp_path), "model=mmin", "model_config.mmin.train_conditions=dropped")


@pytest.mark.parametrize("method", METHODS)
def test_latent_classifier_and_undetached_targets(method, tmp_path):
    trainer = make_trainer(
        str(tmp_path),
        f"model={method}",
        f"model_config.{method}.classifier_input=latent",
        f"model_config.{method}.detach_target=False",
        *TINY,
    )
    model = trainer.model
    blocks = 1 if method == "ae" else model.config.cascade_blocks
    extra = model.invariant_dim if method == "if_mmin" else 0
    assert model.classifier.in_features == 64 * blocks + extra  # latents (+ H')
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    step = next(model.training_steps(batch, 0))
    assert torch.isfinite(step.loss)
    imp = step.outputs["imputation"]
    assert model.target(imp).requires_grad  # the targets carry gradient
    model.detach_target = True
    assert not model.target(imp).requires_grad


def _check_metrics(save_dir, modalities):
    metrics = read_metrics(save_dir)
    assert metrics["modalities"] == modalities
    for split in ("val", "test"):
        assert 0.0 <= metrics[split]["multi"] <= 1.0
        assert all(metrics[split][m] is None for m in modalities)  # no per-modality heads
    return metrics


@pytest.mark.parametrize("rate", [0.0, 0.5])
@pytest.mark.parametrize("method", METHODS)
def test_imputes_in_process(method, rate, tmp_path):
    trainer = make_trainer(
        str(tmp_path), f"model={method}", f"dataset_config.synthetic.missing_rate={rate}", *TINY
    )
    trainer.train()
    metrics = _check_metrics(str(tmp_path), ["strong", "weak"])
    assert metrics["method"] == method
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    trainer.model.eval()
    with torch.no_grad():
        imp = trainer.model(batch)["imputation"]
    absent = ~batch.mask.bool()
    assert torch.equal(imp["keep"], batch.mask.bool())  # evaluation: the data's mask
    assert bool(absent.any()) == (rate > 0)
    slots = absent.repeat_interleave(trainer.model.feature_dim, dim=1)
    # absent slots are imputed (not left at zero), present ones are the encoders' features
    assert torch.equal(imp["filled"][slots], imp["imputed"][slots])
    assert torch.equal(imp["filled"][~slots], imp["target"][~slots])


@pytest.mark.parametrize("method", METHODS)
def test_three_modalities_with_missing(method, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(THREE_YAML)
    trainer = make_trainer(str(tmp_path / "save"), f"model={method}", *TINY, config=str(config))
    assert trainer.model.joint_dim == 3 * 16
    trainer.train()
    _check_metrics(str(tmp_path / "save"), ["a", "b", "c"])


RATES = (0.0, 0.5)
CELLS = [(m, r) for m in METHODS for r in RATES]


@pytest.fixture(scope="module")
def mmf_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("imputation_mmf_run")

    def run(cell):
        method, rate = cell
        save_dir = str(root / f"{method}-{rate:g}")
        args = [f"config={SYNTHETIC}", f"model={method}", f"env.save_dir={save_dir}", *TINY]
        run_cli(
            "mmf_run",
            [*args, f"dataset_config.synthetic.missing_rate={rate:g}"],
            OMP_NUM_THREADS="1",
        )
        return save_dir

    with ThreadPoolExecutor(max_workers=2) as pool:  # two runs at a time, one thread each
        return dict(zip(CELLS, pool.map(run, CELLS), strict=True))


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("method, rate", CELLS)
def test_mmf_run_with_missing_modalities(mmf_runs, method, rate):
    """Every method of the family runs through ``mmf_run`` at missing rates 0 and 0.5."""
    metrics = _check_metrics(mmf_runs[(method, rate)], ["strong", "weak"])
    assert metrics["method"] == method and metrics["dataset"] == "synthetic"
