"""Table-2 baselines CCA, DCCA and DCCAE: the correlation and reconstruction terms
against hand/numpy values, which parameters each term trains, three modalities with
missing ones in-process, and the ``metrics.json`` of ``mmf_run`` at missing rates 0 and 0.5
(too small to learn: that each method learns is tests/models/test_learns.py's contract)."""

import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from mla_plugin.core.correlation import (
    canonical_correlations,
    covariances,
    fill_missing,
    pairwise_total_correlation,
    reconstruction_loss,
    total_correlation,
    update_running_means,
)
from tests.support import BIN, REPO, SYNTHETIC, make_trainer, subprocess_env, three_modality_yaml

METHODS = ["cca", "dcca", "dccae"]
TRAIN, VAL, TEST, BATCH, EPOCHS = 192, 96, 96, 64, 2
TINY = [
    f"dataset_config.synthetic.sizes.train={TRAIN}",
    f"dataset_config.synthetic.sizes.val={VAL}",
    f"dataset_config.synthetic.sizes.test={TEST}",
    f"training.max_epochs={EPOCHS}",
    f"training.batch_size={BATCH}",
]


# ------------------------------------------------------------------ core: correlation
def test_one_dimensional_views_give_the_pearson_correlation():
    # x = [1, 2, 3], y = [1, 3, 2]: centred [-1, 0, 1] and [-1, 1, 0]; with N - 1 = 2,
    # cov = 1/2, var = 1 + r each, so rho = 0.5 / (1 + r)
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [3.0], [2.0]], dtype=torch.float64)
    for r in (0.0, 0.5):
        rho = canonical_correlations(x, y, r, r)
        assert rho.tolist() == pytest.approx([0.5 / (1 + r)])
    # r1 != r2: rho = 0.5 / sqrt((1 + r1)(1 + r2))
    assert total_correlation(x, y, 0.25, 1.0).item() == pytest.approx(0.5 / math.sqrt(1.25 * 2))


def _numpy_correlations(h1, h2, r1, r2):
    """Andrew et al.'s T = S11^-1/2 S12 S22^-1/2 via eigendecompositions, in numpy."""

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return v @ np.diag(w**-0.5) @ v.T

    n = h1.shape[0]
    c1, c2 = h1 - h1.mean(0), h2 - h2.mean(0)
    s11 = c1.T @ c1 / (n - 1) + r1 * np.eye(h1.shape[1])
    s22 = c2.T @ c2 / (n - 1) + r2 * np.eye(h2.shape[1])
    s12 = c1.T @ c2 / (n - 1)
    return np.linalg.svd(inv_sqrt(s11) @ s12 @ inv_sqrt(s22), compute_uv=False)


H1 = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 1.0]])
H2 = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 3.0], [2.0, 0.0]])


def test_covariances_by_hand():
    s11, s22, s12 = covariances(torch.tensor(H1), torch.tensor(H2), 0.1, 0.2)
    c1, c2 = H1 - H1.mean(0), H2 - H2.mean(0)  # means (1.25, 1) and (1.25, 1.25)
    assert c1[0].tolist() == [-0.25, -1.0]
    np.testing.assert_allclose(s12.numpy(), c1.T @ c2 / 3)
    np.testing.assert_allclose(s11.numpy(), c1.T @ c1 / 3 + 0.1 * np.eye(2))
    np.testing.assert_allclose(s22.numpy(), c2.T @ c2 / 3 + 0.2 * np.eye(2))


@pytest.mark.parametrize("r", [0.0, 1e-3, 0.3])
def test_canonical_correlations_match_numpy(r):
    expected = _numpy_correlations(H1, H2, r, 2 * r)
    rho = canonical_correlations(torch.tensor(H1), torch.tensor(H2), r, 2 * r)
    np.testing.assert_allclose(rho.numpy(), expected, rtol=1e-10)
    assert 0 < expected[1] < expected[0] < 1  # a non-degenerate example
    t1, t2 = torch.tensor(H1), torch.tensor(H2)
    assert total_correlation(t1, t2, r, 2 * r).item() == pytest.approx(expected.sum())
    assert total_correlation(t1, t2, r, 2 * r, top_k=1).item() == pytest.approx(expected[0])


def test_three_samples_in_two_dimensions_are_perfectly_correlated():
    # N - 1 = o = 2: both centred views span the same 2-d sample space, so rho = (1, 1)
    h1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    h2 = torch.tensor([[0.0, 5.0], [1.0, 1.0], [4.0, 2.0]], dtype=torch.float64)
    assert canonical_correlations(h1, h2, 0.0, 0.0).tolist() == pytest.approx([1.0, 1.0])


def test_correlation_is_invariant_to_invertible_linear_maps():
    g = torch.Generator().manual_seed(0)
    h1 = torch.randn(20, 3, generator=g, dtype=torch.float64)
    h2 = h1[:, :2] + 0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64)
    a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(
        canonical_correlations(h1 @ a + 7.0, h2, 0.0, 0.0), canonical_correlations(h1, h2, 0, 0)
    )


def test_singular_covariance_without_ridge_is_a_clear_error():
    h = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]], dtype=torch.float64)  # rank 1
    with pytest.raises(ValueError, match=r"not positive definite .* larger ridge \(cca_reg\)"):
        canonical_correlations(h, h, 0.0, 0.0)
    assert canonical_correlations(h, h, 1e-3, 1e-3)[0].item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features_say_training_diverged_not_the_ridge(bad):
    h = torch.randn(8, 3, dtype=torch.float64)
    broken = h.clone()
    broken[2, 1] = bad
    for args in ((broken, h), (h, broken)):
        with pytest.raises(
            ValueError, match=r"model dccae: .* not finite .* training diverged"
        ) as e:
            canonical_correlations(*args, 1e-3, 1e-3, method="dccae")
        assert "use a larger ridge" not in str(e.value)
    views = {"a": broken, "b": h}
    with pytest.raises(ValueError, match=r"model dcca: .* not finite"):
        pairwise_total_correlation(views, None, 1e-3, 1e-3, None, "dcca")


def test_huge_finite_features_say_training_diverged():
    h = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # rank 1, float32
    with pytest.raises(ValueError, match=r"model dccae: the features are too large .* diverged"):
        canonical_correlations(h * 1e6, h * 1e6, 1e-3, 1e-3, method="dccae")
    with pytest.raises(ValueError, match=r"larger ridge \(cca_reg\)"):  # moderate: the ridge
        canonical_correlations(h, h, 0.0, 0.0, method="dccae")


def test_half_precision_views_are_computed_in_float32():
    h1, h2 = torch.tensor(H1).to(torch.bfloat16), torch.tensor(H2).to(torch.bfloat16)
    rho = canonical_correlations(h1, h2, 0.1, 0.1)
    expected = _numpy_correlations(
        h1.double().numpy(), h2.double().numpy(), 0.1, 0.1
    )  # same (rounded) inputs
    assert rho.dtype == torch.float32
    np.testing.assert_allclose(rho.numpy(), expected, rtol=1e-5)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(8, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, 2, generator=g, dtype=torch.float64, requires_grad=True)
    for k in (None, 2):
        assert torch.autograd.gradcheck(
            lambda x, y, k=k: total_correlation(x, y, 0.1, 0.2, k), (a, b)
        )


def test_gradient_stays_finite_for_identical_views():
    # identical views: every canonical correlation equal (repeated singular values)
    h = torch.randn(16, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    corr = total_correlation(h, h, 1e-3, 1e-3)
    corr.backward()
    assert corr.item() == pytest.approx(4.0, abs=1e-2)
    assert bool(torch.isfinite(h.grad).all())


def test_pairwise_correlation_sums_pairs_on_their_shared_samples():
    g = torch.Generator().manual_seed(2)
    views = {m: torch.randn(6, 2, generator=g, dtype=torch.float64) for m in "abc"}
    present = torch.tensor(
        [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool
    )

    def on(rows, a, b):
        return total_correlation(views[a][rows], views[b][rows], 0.1, 0.1)

    ab, ac, bc = [0, 1, 2, 5], [0, 2, 3], [0, 2, 4]
    expected = on(ab, "a", "b") + on(ac, "a", "c") + on(bc, "b", "c")
    got = pairwise_total_correlation(views, present, 0.1, 0.1)
    assert got.item() == pytest.approx(expected.item())
    # no mask: every sample, every pair
    full = sum(on(list(range(6)), a, b) for a, b in (("a", "b"), ("a", "c"), ("b", "c")))
    assert pairwise_total_correlation(views, None, 0.1, 0.1).item() == pytest.approx(full.item())
    # a pair sharing fewer than 2 samples adds nothing, and the result keeps its graph
    x = {m: v.clone().requires_grad_() for m, v in views.items()}
    lonely = torch.tensor([[1, 0, 1]] * 3 + [[0, 1, 1]] * 3, dtype=torch.bool)
    got = pairwise_total_correlation(x, lonely, 0.1, 0.1)
    expected = total_correlation(views["a"][:3], views["c"][:3], 0.1, 0.1) + total_correlation(
        views["b"][3:], views["c"][3:], 0.1, 0.1
    )
    assert got.item() == pytest.approx(expected.item())
    none = pairwise_total_correlation(x, torch.eye(3, dtype=torch.bool).repeat(2, 1), 0.1, 0.1)
    assert none.item() == 0.0 and none.requires_grad


# --------------------------------------------------------------- core: DCCAE, filling
def test_reconstruction_term_by_hand():
    target = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    recon = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    # squared errors per sample: 1 + 4 = 5 and 1 + 1 = 2
    assert reconstruction_loss(target, recon).item() == pytest.approx(3.5)
    assert reconstruction_loss(target, recon, torch.tensor([True, False])).item() == 5.0
    assert reconstruction_loss(target, recon, torch.tensor([False, True])).item() == 2.0
    empty = reconstruction_loss(target, recon.requires_grad_(), torch.tensor([False, False]))
    assert empty.item() == 0.0 and empty.requires_grad


def test_fill_and_running_means_by_hand():
    z = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[5.0, 6.0], [7.0, 8.0]])}
    present = torch.tensor([[True, False], [True, True]])
    zeros = fill_missing(z, present, "zeros")
    assert zeros["a"].tolist() == z["a"].tolist()
    assert zeros["b"].tolist() == [[0.0, 0.0], [7.0, 8.0]]
    means = {"a": torch.zeros(2), "b": torch.tensor([10.0, 20.0])}
    update_running_means(means, z, present, momentum=0.5)
    assert means["a"].tolist() == [1.0, 1.5]  # 0.5 * 0 + 0.5 * mean([1, 2], [3, 4])
    assert means["b"].tolist() == [8.5, 14.0]  # 0.5 * [10, 20] + 0.5 * [7, 8]
    filled = fill_missing(z, present, "mean", means)
    assert filled["b"].tolist() == [[8.5, 14.0], [7.0, 8.0]]
    assert fill_missing(z, None, "mean", means)["b"] is z["b"]
    with pytest.raises(ValueError, match="'zeros' or 'mean'"):
        fill_missing(z, present, "median")


# ----------------------------------------------------------------- models in-process
def _grads(module):
    return [p.grad for p in module.parameters()]


def _has_grad(module):
    return any(g is not None and bool(g.abs().sum() > 0) for g in _grads(module))


@pytest.mark.parametrize("method", METHODS)
def test_which_parameters_each_term_trains(method, tmp_path):
    trainer = make_trainer(str(tmp_path), f"model={method}", *TINY)
    model = trainer.model
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    out = model(batch)
    terms = model.objective(out, batch)
    assert terms["corr"].item() > 0
    model.zero_grad(set_to_none=True)
    terms["corr"].backward(retain_graph=True)
    # linear CCA fits only the projections; DCCA(E) trains the encoders with them
    assert _has_grad(model.projections)
    assert _has_grad(model.encoders) == (method != "cca")
    assert not _has_grad(model.head)
    model.zero_grad(set_to_none=True)
    terms["ce"].backward(retain_graph=True)
    assert _has_grad(model.encoders) and _has_grad(model.head)
    assert _has_grad(model.projections) == (method != "cca")
    if method == "dccae":
        # recon_m = mean_i ||h_m,i - g_m(f_m(h_m,i))||^2 / mean_i ||h_m,i||^2 (relative, the
        # default) with the encoder output detached
        z, h = out["cca_views"], out["features"]
        expected = sum(
            (h[m].detach() - model.decoders[m](z[m])).pow(2).sum(1).mean()
            / h[m].detach().pow(2).sum(1).mean()
            for m in z
        )
        assert terms["recon"].item() == pytest.approx(expected.item(), rel=1e-6)
        total = terms["ce"] - terms["corr"] + 0.1 * terms["recon"]  # weights: dccae.yaml
        assert model.total_loss(terms).item() == pytest.approx(total.item(), rel=1e-6)
    # the term is maximised: 3 trainer steps on this batch leave it far more correlated
    # than the same steps without the term (cca_corr_weight = 0).  Measured: 6.2 (cca),
    # 8.5 (dcca, dccae) against 2.6; with the sign of the term flipped, 2.4 and 2.9.
    after = {}
    for weight in (1.0, 0.0):
        t = make_trainer(
            str(tmp_path / f"w{weight}"), f"model={method}", *TINY,
            f"model_config.{method}.cca_corr_weight={weight}",
        )  # fmt: skip
        for _ in range(3):
            t.train_batch(batch)
        after[weight] = t.model.objective(t.model(batch), batch)["corr"].item()
    assert after[1.0] > after[0.0] + 1.0, after


THREE_YAML = three_modality_yaml()


@pytest.mark.parametrize(
    "method, extra",
    [
        ("cca", ["model_config.cca.cca_fill=mean"]),
        ("dcca", ["model_config.dcca.cca_top_k=5"]),
        ("dccae", ["model_config.dccae.dccae_recon_target=input"]),
    ],
)
def test_three_modalities_with_missing(method, extra, tmp_path):
    config = tmp_path / "three.yaml"
    config.write_text(THREE_YAML)
    save = tmp_path / "save"
    trainer = make_trainer(
        str(save), f"model={method}", *TINY, "training.max_epochs=1", *extra, config=str(config)
    )
    mask = torch.cat([b["mask"] for b in trainer.ctx.train_loader])
    assert not bool(mask.all()) and bool(mask.any(1).all())
    trainer.train()
    metrics = json.loads((save / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["modalities"] == ["a", "b", "c"]
    for split in ("val", "test"):
        assert set(metrics[split]) == {"multi", "a", "b", "c"}
        assert all(0.0 <= v <= 1.0 for v in metrics[split].values()), metrics[split]
    if "cca_fill=mean" in extra[0]:  # the running means moved off their zero start
        assert all(bool(v.abs().sum() > 0) for v in trainer.model.running_means().values())


@pytest.mark.parametrize(
    "opt, message",
    [
        (
            "model_config.cca.cca_reg=0.0",
            r"model_config.cca.cca_reg = 0.0 is outside its declared range: expected a number in \(0, inf\)",
        ),
        ("model_config.dcca.cca_top_k=11", r"model_config.dcca.cca_top_k .* 1..cca_dim=10"),
        ("model_config.dccae.cca_fill=median", r"model_config.dccae.cca_fill must be"),
        ("model_config.dccae.dccae_recon_target=x", r"dccae_recon_target must be"),
        ("model_config.dccae.dccae_recon_scale=x", r"dccae\.dccae_recon_scale must be one of"),
    ],
)
def test_bad_settings_name_the_key(opt, message, tmp_path):
    model = opt.split(".")[1]
    with pytest.raises(ValueError, match=message):
        make_trainer(str(tmp_path), f"model={model}", opt)


# ------------------------------------------------------------------------ mmf_run
def _mmf_run(method, rate, save_dir):
    cmd = [
        os.path.join(BIN, "mmf_run"),
        f"config={SYNTHETIC}",
        f"model={method}",
        f"env.save_dir={save_dir}",
        f"dataset_config.synthetic.missing_rate={rate}",
        *TINY,
    ]
    return subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )


RATES = [0.0, 0.5]


@pytest.fixture(scope="module")
def mmf_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("correlation_mmf_run")
    jobs = {(m, r): str(root / f"{m}_{r}") for m in METHODS for r in RATES}
    with ThreadPoolExecutor(max_workers=2) as pool:  # two runs at a time, one thread each
        futures = {key: pool.submit(_mmf_run, *key, d) for key, d in jobs.items()}
        return {key: (f.result(), jobs[key]) for key, f in futures.items()}


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("method", METHODS)
def test_mmf_run_writes_metrics(mmf_runs, method, rate):
    proc, save_dir = mmf_runs[(method, rate)]
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    with open(os.path.join(save_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["method"] == method and metrics["modalities"] == ["strong", "weak"]
    assert 0 < metrics["selected_update"] <= EPOCHS * math.ceil(TRAIN / BATCH)
    for split in ("val", "test"):
        assert set(metrics[split]) == {"multi", "strong", "weak"}
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics[split].values())
