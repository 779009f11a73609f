"""Learning-rate schedules stepped once per epoch by the multimodal trainer."""

import torch
from mmf.common.registry import registry


@registry.register_scheduler("step_lr")
class StepLR(torch.optim.lr_scheduler.StepLR):
    """``step_size`` epochs, then multiply by ``gamma`` (the paper: 70 of 100, 0.1)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        # (an explicit signature: mla_plugin/mmf_config.py checks scheduler.params against it)
        # torch checks nothing and divides by step_size at the first epoch's end
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(
                f"scheduler.params.step_size: {step_size!r} must be an integer >= 1 "
                "(epochs between learning-rate decays)"
            )
        super().__init__(optimizer, step_size, gamma=gamma, last_epoch=last_epoch)
