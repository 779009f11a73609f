"""Head gradient modification (HGM): the OWM / recursive-least-squares projector, paper Eq. 3-4.

At every modality step t with batch-mean feature h̄ (detached) the projector is updated (Eq. 3,
with the printed P_t in q_t read as P_{t-1}, the only non-circular reading)::

    k   = P_{t-1} h̄
    P_t = P_{t-1} - k kᵀ / (α + h̄ᵀ k)

and the head's weight gradient G ∈ R^{C×s} is replaced by G P_t (Eq. 4, input-side projection,
the dimensionally correct form of "P_t ∇φ L"). P_0 = I_s, so the step at t = 0 is a plain gradient
step; skipping the projection at the very first step is the caller's job, as in the code.

The bias is a weight on a constant input 1: ``project_bias=True`` uses a projector of size s + 1
fed with ``augment(h̄)`` = [h̄, 1], so weight and bias are projected together, exactly.

``mode="code_literal"`` reproduces the authors' ``GSPlugin`` formula (``docs/method-notes.md`` §4): the
denominator is the s×s outer product α + k h̄ᵀ, divided element-wise, so P is not symmetric and,
with ``p_frob_norm``, turns indefinite on non-negative features.
"""

import torch
from torch import nn

MODES = ("owm", "code_literal")


def alpha_schedule(batch_index: int, num_batches: int, base: float = 0.1) -> float:
    """The code's α = base^(1 + b/N_b): falls from ``base`` to about base² within an epoch, then restarts."""
    if num_batches <= 0:
        raise ValueError(f"num_batches must be positive, got {num_batches}")
    return float(base ** (1.0 + batch_index / num_batches))


def augment(h_mean: torch.Tensor) -> torch.Tensor:
    """[h̄, 1]: the feature seen by a head whose bias is treated as a weight column on input 1."""
    return torch.cat([h_mean, h_mean.new_ones(1)])


class OrthogonalProjector:
    """The matrix P of Eq. 3, shared by all modalities; never reset by default (as in the code),
    :meth:`reset` restores P_0 (the hook calls it each epoch with ``hgm_reset: epoch``).

    Args:
        dim: feature size s (s + 1 when the bias is projected too, see :func:`augment`).
        mode: ``"owm"`` (paper / OWM, scalar denominator) or ``"code_literal"`` (element-wise
            outer-product denominator of the released code).
        p_frob_norm: divide P by its Frobenius norm after every update (code only, not in the paper).
        dtype, device: of P; float32 by default, float64 for a more exact recursion.

    ``mode`` and ``p_frob_norm`` are required keywords: MLA's values are ``hgm`` and
    ``p_frob_norm`` in ``mla_plugin/configs/models/mla.yaml``.
    """

    def __init__(
        self,
        dim: int,
        *,
        mode: str,
        p_frob_norm: bool,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown projector mode {mode!r}; valid: {', '.join(MODES)}")
        self.dim, self.mode, self.p_frob_norm = dim, mode, p_frob_norm
        self.P = torch.eye(dim, dtype=dtype, device=device)
        self.num_updates = 0

    def reset(self) -> None:
        """P back to its initial value P_0 = I_s (``hgm_reset: epoch``); the update count is kept."""
        self.P = torch.eye(self.dim, dtype=self.P.dtype, device=self.P.device)

    @torch.no_grad()
    def normalized_trace(self) -> torch.Tensor:
        """trace(P)/s as a 0-d tensor (no host sync): 1 at P_0 = I, falling as directions are
        used up; for the ``owm`` P (a projector-like PSD matrix) it is the mean eigenvalue."""
        return torch.diagonal(self.P).sum() / self.dim

    @torch.no_grad()
    def update(self, h_mean: torch.Tensor, alpha: float) -> None:
        """One RLS step (Eq. 3) with the current modality's batch-mean feature ``h_mean`` [dim].

        ``owm``: P ← P − k kᵀ/(α + h̄ᵀk), k = P h̄, then symmetrised ((P + Pᵀ)/2) against round-off.
        ``code_literal``: P ← P − (k kᵀ) ⊘ (α + k h̄ᵀ), element-wise, not symmetrised (code differs
        from Eq. 3 here).
        """
        h = h_mean.detach().to(dtype=self.P.dtype, device=self.P.device)
        if h.shape != (self.dim,):
            raise ValueError(f"h_mean must have shape ({self.dim},), got {tuple(h.shape)}")
        k = self.P @ h
        if self.mode == "owm":
            P = self.P - torch.outer(k, k) / (alpha + h @ k)
            P = (P + P.T) / 2
        else:
            P = self.P - torch.outer(k, k) / (alpha + torch.outer(k, h))
        if self.p_frob_norm:
            P = P / torch.linalg.matrix_norm(P)
        self.P = P
        self.num_updates += 1

    @torch.no_grad()
    def project(self, grad: torch.Tensor) -> torch.Tensor:
        """Eq. 4 for a weight gradient G [C, dim]: returns G Pᵀ (= G P for the symmetric ``owm`` P;
        Pᵀ is what the code uses, which matters only for the non-symmetric ``code_literal`` P)."""
        if grad.shape[-1] != self.dim:
            raise ValueError(f"gradient has input size {grad.shape[-1]}, projector has {self.dim}")
        return (grad.to(self.P.dtype) @ self.P.T).to(grad.dtype)

    def state_dict(self) -> dict[str, object]:
        return {"P": self.P.clone(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        P = state["P"]
        if not isinstance(P, torch.Tensor) or P.shape != (self.dim, self.dim):
            raise ValueError(f"state P must be a ({self.dim}, {self.dim}) tensor")
        self.P = P.detach().to(dtype=self.P.dtype, device=self.P.device).clone()
        self.num_updates = int(state["num_updates"])  # type: ignore[arg-type]


@torch.no_grad()
def project_head_gradient(
    head: nn.Linear, projector: OrthogonalProjector, *, project_bias: bool
) -> None:
    """Replace the head's gradients in place by their projection (Eq. 4).

    Without ``project_bias`` only ``head.weight.grad`` is projected (the bias gradient is left
    alone, as in the code); the projector has size ``in_features``. With ``project_bias`` the
    projector has size ``in_features + 1`` (updated with :func:`augment`), and [G_W, g_b] is
    projected as one matrix whose last column is the bias gradient.
    """
    weight_grad = head.weight.grad
    if weight_grad is None:
        return
    if not project_bias:
        head.weight.grad = projector.project(weight_grad)
        return
    if head.bias is None or head.bias.grad is None:
        raise ValueError("project_bias=True needs a head with a bias that has a gradient")
    joint = projector.project(torch.cat([weight_grad, head.bias.grad.unsqueeze(1)], dim=1))
    head.weight.grad = joint[:, :-1].contiguous()
    head.bias.grad = joint[:, -1].contiguous()
