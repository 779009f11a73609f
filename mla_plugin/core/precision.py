"""Mixed precision for the training loop: ``torch.autocast`` around the forward passes
and, for fp16, loss scaling with ``torch.amp.GradScaler``.  Framework-free (PyTorch
only), so the loop and the GPU benchmark's MMF-free path share it.

Per optimizer step (MLA takes one per modality, each with its own scale/unscale/step/
update)::

    with amp.autocast(): step = next(model.training_steps(...))   # the forward
    amp.backward(step.loss)                    # scaler.scale(loss).backward()
    average_gradients(params)                  # the loop's, from core/distributed
    finite = amp.unscale(optimizer)            # so the hooks see true gradients
    hooks.on_before_optimizer_step(step)                 # HGM projects, OGM-GE modulates
    amp.step(optimizer)                        # skipped by the scaler on inf/nan
    hooks.on_after_optimizer_step(step)

The loop averages the gradients over ranks (:mod:`mla_plugin.core.distributed`) *before*
``unscale_`` (unscaling is linear, so the
result is the same): the scaler decides to skip a step from the gradients it unscales,
and after the all-reduce every rank holds the same ones (an inf on any rank is an inf on
all), so the ranks skip together.  Unscaling first would let one rank skip while the
others step with the inf it sent them.
"""

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
# MMF's command line reads values with ast.literal_eval: `true` stays a string there
BOOL_HINT = "true/false in YAML, True/False on MMF's command line"
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision, fp16) -> str:
    """The run's precision from ``training.precision`` and MMF's ``training.fp16``
    (``true`` means fp16); an unknown value, or the two keys disagreeing, is an error
    naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"training.precision: {precision!r} is not one of {list(PRECISIONS)}")
    if not isinstance(fp16, bool):
        raise ValueError(f"training.fp16: {fp16!r} must be a bool ({BOOL_HINT})")
    if fp16 and precision != "fp16":
        if precision != "fp32":
            raise ValueError(
                f"training.fp16: true (MMF's switch for fp16) disagrees with "
                f"training.precision: {precision}; set one of them"
            )
        return "fp16"
    return precision


class MixedPrecision:
    """Autocast and (for fp16) a GradScaler for one device; fp32 makes every method a
    plain pass-through, so the loop has no precision branches."""

    def __init__(self, precision: str, device: torch.device):
        if precision not in PRECISIONS:
            raise ValueError(f"training.precision: {precision!r} is not one of {list(PRECISIONS)}")
        self.precision, self.device = precision, torch.device(device)
        self.dtype = DTYPES[precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")

    def autocast(self):
        """The context for forward passes (training steps and evaluation)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate the loss, scaled for fp16.  The gradients stay scaled: the loop
        averages them over ranks, then calls :meth:`unscale` (see the module docstring)."""
        self.scaler.scale(loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> bool:
        """Divide the gradients by the scale; True when they are all finite (the scaler
        will step).  Reads the flags ``unscale_`` just computed (the scaler keeps them in
        its per-optimizer state; ``step`` reads the same ones)."""
        if not self.scaler.is_enabled():
            return True
        self.scaler.unscale_(optimizer)
        found = self.scaler._found_inf_per_device(optimizer)
        return not sum(float(v.item()) for v in found.values())

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()`` through the scaler (which skips it on inf/nan), then
        ``scaler.update()`` (which lowers the scale after a skip, raises it after
        ``growth_interval`` good steps)."""
        if not self.scaler.is_enabled():
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()  # {} unless fp16

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
