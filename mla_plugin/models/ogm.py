"""OGM, plain On-the-fly Gradient Modulation (Peng et al., CVPR 2022, Eq. 9-10): OGM-GE
(:mod:`mla_plugin.models.ogm_ge`) without the Generalization Enhancement noise.

The same hook and rule (:class:`~mla_plugin.core.ogm_ge.OGMGEHook`): after backward on the
fused CE, the dominant modality's encoder gradients are scaled by k = 1 - tanh(α·ρ) while
the window ``[ogm_start_epoch, ogm_end_epoch]`` (0-based, inclusive) is open; nothing is
added to them.  The paper's window (from epoch 0) is the default; BalanceBenchmark's start
at epoch 10 is ``ogm_start_epoch: 10``.  The TPAMI 2024 journal version (α 0.8, modulation
after a 5-epoch warm-up) is ``ogm_start_epoch: 5``.  Switches:
``mla_plugin/configs/models/ogm.yaml``.
"""

from mmf.common.registry import registry

from mla_plugin.core.hooks import register_hook
from mla_plugin.models.ogm_ge import OGMGE, RecordingOGMGEHook


@register_hook("ogm", model_hook=True)
class RecordingOGMHook(RecordingOGMGEHook):
    """The OGM-GE hook with its coefficient record, under its own name (``ogm``) in
    checkpoints and ``metrics.json``."""


@registry.register_model("ogm")
class OGM(OGMGE):
    NAME = "ogm"
    HOOK = RecordingOGMHook

    def ge_switches(self) -> dict:
        # no noise: the seed and the noise's scope are never used
        return {"ge": False, "seed": 0, "ge_scope": "modulated"}
