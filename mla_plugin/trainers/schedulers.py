"""Learning-rate schedules stepped once per epoch by the multimodal trainer."""

import torch
from mmf.common.registry import registry


@registry.register_scheduler("step_lr")
class StepLR(torch.optim.lr_scheduler.StepLR):
    """``step_size`` epochs, then multiply by ``gamma`` (the paper: 70 of 100, 0.1)."""
