"""The scale-free reconstruction error (``recon_scale: relative``) shared by DCCAE, the
imputation family (AE, CRA, MMIN, IF-MMIN) and CPM-Net."""

import pytest
import torch

from mla_plugin.core.correlation import reconstruction_loss as dccae_recon
from mla_plugin.core.imagination import masked_mse
from mla_plugin.core.losses import check_recon_scale, target_mean_square
from mla_plugin.core.partial_views import reconstruction_loss as cpm_recon

g = torch.Generator().manual_seed(0)
PAIRED = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)  # [B, M·s], M = 2
MASK = torch.tensor([[True, True], [True, False], [False, True]] * 2)


def _dccae(target, recon, scale):
    return dccae_recon(target, recon, MASK[:, 0], scale)


def _imputation(target, recon, scale):
    return masked_mse(recon, target, MASK, scale)


def _cpm(target, recon, scale):
    return cpm_recon(recon.view(6, 2, 2), target.view(6, 2, 2), MASK, scale)


LOSSES = [_dccae, _imputation, _cpm]


@pytest.mark.parametrize("loss", LOSSES)
def test_relative_error_is_invariant_to_the_targets_scale(loss):
    target, recon = PAIRED
    base = loss(target, recon, "relative")
    for c in (1e-3, 10.0, 1e4):
        torch.testing.assert_close(loss(c * target, c * recon, "relative"), base)
    # the plain (paper's) squared error grows with c²
    plain = loss(target, recon, "absolute")
    assert loss(1e4 * target, 1e4 * recon, "absolute").item() == pytest.approx(1e8 * plain.item())


def test_relative_error_by_hand():
    target = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    recon = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    # DCCAE: mean_i ||x - x̂||² = (5 + 1) / 2 over mean_i ||x||² = (5 + 9) / 2
    assert dccae_recon(target, recon, None, "relative").item() == pytest.approx(6 / 14, abs=1e-6)
    # only sample 1 present: 5 / 5
    present = torch.tensor([True, False])
    assert dccae_recon(target, recon, present, "relative").item() == pytest.approx(1.0, abs=1e-6)


def test_relative_error_trains_the_reconstruction_only():
    target = torch.randn(5, 3, generator=g, requires_grad=True)
    recon = torch.randn(5, 3, generator=g, requires_grad=True)
    dccae_recon(target.detach(), recon, None, "relative").backward()
    assert recon.grad is not None and target.grad is None
    assert target_mean_square(target).requires_grad is False


def test_unknown_scale_names_the_key():
    with pytest.raises(ValueError, match=r"model_config\.ae\.recon_scale must be one of"):
        check_recon_scale("log", "model_config.ae.recon_scale")
