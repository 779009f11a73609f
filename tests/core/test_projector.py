import math

import pytest
import torch
from torch import nn

from mla_plugin.core.projector import (
    OrthogonalProjector,
    alpha_schedule,
    augment,
    project_head_gradient,
)


def _features(n, dim, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dim, generator=g, dtype=torch.float64) * scale


def test_alpha_schedule_code_values():
    assert alpha_schedule(0, 100) == pytest.approx(0.1)
    assert alpha_schedule(50, 100) == pytest.approx(0.1**1.5)
    assert 0.01 < alpha_schedule(99, 100) < 0.0105
    with pytest.raises(ValueError):
        alpha_schedule(0, 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_owm_projector_stays_symmetric_psd_contraction(dtype):
    dim = 32
    proj = OrthogonalProjector(dim, mode="owm", p_frob_norm=False, dtype=dtype)
    for t, h in enumerate(_features(200, dim, seed=0)):
        proj.update(h.to(dtype), alpha_schedule(t % 40, 40))
    P = proj.P.double()
    assert proj.num_updates == 200
    assert torch.equal(proj.P, proj.P.T)
    eig = torch.linalg.eigvalsh(P)
    assert eig.min() >= -1e-5 and eig.max() <= 1 + 1e-5
    assert eig.max() < 0.99  # it has moved away from P_0 = I


def test_rls_identity_on_absorbed_feature():
    dim, alpha = 16, 0.05
    proj = OrthogonalProjector(dim, mode="owm", p_frob_norm=False, dtype=torch.float64)
    for h in _features(5, dim, seed=1):
        proj.update(h, 0.1)
    h = _features(1, dim, seed=2)[0]
    P_old = proj.P.clone()
    proj.update(h, alpha)
    expected = alpha / (alpha + h @ P_old @ h) * (P_old @ h)
    torch.testing.assert_close(proj.P @ h, expected, rtol=1e-10, atol=1e-12)
    assert (proj.P @ h).norm() < 0.05 * h.norm()


def test_projected_head_step_preserves_earlier_modality_output():
    torch.manual_seed(0)
    dim, classes, lr = 32, 6, 0.5
    h_old, h_new = _features(2, dim, seed=3).float()
    proj = OrthogonalProjector(dim, mode="owm", p_frob_norm=False)
    proj.update(h_old, alpha_schedule(0, 10))  # modality a's step
    proj.update(h_new, alpha_schedule(1, 10))  # modality b's step (current)
    G = torch.randn(classes, dim)
    plain = (-lr * G) @ h_old
    projected = (-lr * proj.project(G)) @ h_old
    assert projected.norm() < 0.05 * plain.norm()  # ~α/(α + ‖h_old − h_new‖²) scale
    torch.testing.assert_close(proj.project(G), G @ proj.P)


def test_project_head_gradient_weight_only_and_with_bias():
    torch.manual_seed(0)
    dim, classes = 16, 4
    h_old, h_new = _features(2, dim, seed=4).float()
    x = h_new + 0.1 * torch.randn(8, dim)
    y = torch.randint(0, classes, (8,))

    def step_change(project_bias):
        head = nn.Linear(dim, classes)
        proj = OrthogonalProjector(dim + 1 if project_bias else dim, mode="owm", p_frob_norm=False)
        lift = augment if project_bias else (lambda v: v)
        proj.update(lift(h_old), 0.01)
        proj.update(lift(x.mean(0)), 0.01)
        before = head(h_old).detach()
        nn.functional.cross_entropy(head(x), y).backward()
        bias_grad = head.bias.grad.clone()
        project_head_gradient(head, proj, project_bias=project_bias)
        if not project_bias:
            assert torch.equal(head.bias.grad, bias_grad)
        with torch.no_grad():
            for p in head.parameters():
                p -= 1.0 * p.grad
        return (head(h_old).detach() - before).norm(), bias_grad.norm()

    change_w, bias_step = step_change(False)
    change_wb, _ = step_change(True)
    assert change_wb < 0.05 * change_w  # the unprojected bias step moves the old output
    assert change_wb < 0.05 * bias_step


def test_projector_detaches_and_validates():
    proj = OrthogonalProjector(4, mode="owm", p_frob_norm=False)
    h = torch.rand(4, requires_grad=True)
    proj.update(h * 2, 0.1)
    assert not proj.P.requires_grad
    with pytest.raises(ValueError):
        proj.update(torch.rand(5), 0.1)
    with pytest.raises(ValueError):
        proj.project(torch.rand(3, 5))
    with pytest.raises(ValueError, match="owm"):
        OrthogonalProjector(4, mode="owm2", p_frob_norm=False)


def test_state_dict_round_trip():
    proj = OrthogonalProjector(8, mode="owm", p_frob_norm=False, dtype=torch.float64)
    for h in _features(3, 8, seed=5):
        proj.update(h, 0.1)
    other = OrthogonalProjector(8, mode="owm", p_frob_norm=False, dtype=torch.float64)
    other.load_state_dict(proj.state_dict())
    assert torch.equal(other.P, proj.P) and other.num_updates == 3
    with pytest.raises(ValueError):
        OrthogonalProjector(9, mode="owm", p_frob_norm=False).load_state_dict(proj.state_dict())


def test_code_literal_with_frob_norm_becomes_indefinite_unlike_owm():
    """Documented contrast (docs/method-notes.md §4): the code's element-wise denominator plus Frobenius
    renormalisation gives an indefinite, non-symmetric P on non-negative features."""
    dim = 64
    feats = _features(200, dim, seed=0, scale=0.5)
    literal = OrthogonalProjector(dim, mode="code_literal", p_frob_norm=True, dtype=torch.float64)
    owm = OrthogonalProjector(dim, mode="owm", p_frob_norm=False, dtype=torch.float64)
    for t, h in enumerate(feats):
        literal.update(h, alpha_schedule(t % 50, 50))
        owm.update(h, alpha_schedule(t % 50, 50))
    assert torch.linalg.matrix_norm(literal.P) == pytest.approx(1.0)
    assert not torch.allclose(literal.P, literal.P.T)
    sym_eig = torch.linalg.eigvalsh((literal.P + literal.P.T) / 2)
    assert sym_eig.min() < -0.1  # some gradient directions are reversed
    assert torch.linalg.eigvalsh(owm.P).min() >= -1e-10
    assert not math.isnan(sym_eig.max().item())
