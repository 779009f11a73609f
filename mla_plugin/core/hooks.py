"""Hook points of the training loop, named for their moments (as PyTorch Lightning's
callbacks), and a registry of hooks by name.

The loop in :mod:`mla_plugin.trainers.multimodal` calls, on every hook in order (the
model's ``training_hooks()``, the user's ``training.hooks``, then the loop's own
callbacks, ``training.callbacks``)::

    hook.setup(ctx)                                # the run context, once it is built
    hook.on_train_start(model)
    for each epoch:
        hook.on_train_epoch_start(epoch, num_batches)
        for each batch:
            for each optimizer step the model yields (MLA: one per modality):
                loss.backward()                    # scaled, averaged over ranks, unscaled
                hook.on_before_optimizer_step(step)  # MLA's HGM projects, OGM-GE modulates
                optimizer.step()
                hook.on_after_optimizer_step(step)   # QMF records per-sample losses
            (counters advance; validation when training.evaluation_interval is due)
            hook.on_train_batch_end(batch, batch_index, loss)
        (a whole epoch: LR scheduler step, then validation at each epoch's end)
        hook.on_train_epoch_end(epoch)             # after the LR step and validation
    (validation where training stopped, unless the last one was there)
    hook.on_train_end(model)                       # before the final selection/evaluation
    hook.on_fit_end()                              # after metrics.json

    after each validation: hook.on_validation_end(metrics)

so MLA, OGM-GE and QMF plug in without special cases in the loop, and the loop's own
concerns (checkpointing, model selection, early stopping, TensorBoard, progress lines,
the divergence guard: :mod:`mla_plugin.trainers.callbacks`) are hooks too.  There is no
``on_after_backward`` in Lightning's sense (gradients still scaled and not yet averaged
over ranks): every hook here wants the true, rank-averaged gradients, which is
Lightning's ``on_before_optimizer_step`` moment.

Hooks are registered by name (:func:`register_hook`); a model supplies its own hooks
(``training_hooks()``: MLA's ``hgm``, OGM-GE's ``ogm_ge``, QMF's ``qmf``, CPM-Net's
``cpm_prototypes``), ``training.hooks`` in the run's config adds user hooks by name
(:func:`build_hooks`), after the model's, and ``training.callbacks`` lists the loop's
callbacks (registered with ``callback=True``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Step:
    """One optimizer step.

    A model's ``training_steps`` yields it with the model-side fields: ``loss``, the
    ``modality`` it trains and its ``modality_index`` (both ``None`` for a joint step),
    ``features`` (modality -> encoder output [B, s], with graph) and ``outputs`` (the
    model's logits for the batch).  The loop then fills in its context
    (``dataclasses.replace``): ``model``, ``optimizer``, ``batch``, ``epoch`` (1-based),
    ``batch_index`` (in the epoch), ``num_batches`` (per epoch), ``global_step`` (optimizer
    steps so far) and ``mask``, the per-sample presence [B, M] (None when every modality
    is present).
    """

    loss: torch.Tensor
    modality: str | None = None
    modality_index: int | None = None
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    # the loop's context
    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    batch: dict[str, Any] | None = None
    epoch: int = 0
    batch_index: int = 0
    num_batches: int = 0
    global_step: int = 0
    mask: torch.Tensor | None = None
    # fp16 only: the step's (unscaled) gradients hold inf/nan, so the GradScaler skips the
    # optimizer step (the hooks are still called; HGM leaves P alone on such a step)
    skipped: bool = False


# the pre-registry names, refused so an old subclass cannot be silently skipped
RENAMED = {
    "after_backward": "on_before_optimizer_step",
    "after_step": "on_after_optimizer_step",
    "on_epoch_start": "on_train_epoch_start",
}


class TrainingHook:
    """Base class: every method is a no-op; subclasses override what they need.

    ``name`` keys the hook's state in checkpoints and its summary in ``metrics.json``;
    the hooks of a run have distinct names.
    """

    name: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        old = sorted(set(RENAMED) & set(vars(cls)))
        if old:
            raise TypeError(
                f"training hook {cls.__qualname__} defines {old}; these moments are now "
                + ", ".join(f"{o} -> {RENAMED[o]}" for o in old)
            )

    def setup(self, ctx: Any) -> None:
        """Once, after the model, optimizer and data are built and before any state is
        resumed: ``ctx`` is the run's :class:`~mla_plugin.trainers.context.RunContext`
        (the loop's callbacks keep it; the model's hooks need not)."""

    def on_train_start(self, model: torch.nn.Module) -> None:
        """Once, before the first epoch (also on a resumed run)."""

    def on_train_epoch_start(self, epoch: int, num_batches: int) -> None:
        """Before the epoch's first batch; ``epoch`` 1-based (a run resumed mid-epoch
        calls it again for that epoch)."""

    def on_before_optimizer_step(self, step: Step) -> None:
        """After ``loss.backward()``, the gradients averaged over ranks and unscaled (fp16),
        before ``optimizer.step()``: the hook may change the gradients."""

    def on_after_optimizer_step(self, step: Step) -> None:
        """After ``optimizer.step()`` (also called when fp16 skipped the step:
        ``step.skipped``)."""

    def on_train_batch_end(self, batch: Any, batch_index: int, loss: float) -> None:
        """After all the optimizer steps of one batch (``batch_index``, 0-based in the
        epoch), the loop's counters advanced and a validation due at this update run;
        ``loss`` is the sum of the steps' losses."""

    def on_train_epoch_end(self, epoch: int) -> None:
        """After a whole epoch (``epoch`` 1-based, not one a stop cut short), its LR
        scheduler step and its end-of-epoch validation."""

    def on_validation_end(self, metrics: dict[str, Any]) -> None:
        """After each validation: ``metrics`` the val accuracies (``multi`` and per
        modality)."""

    def on_train_end(self, model: torch.nn.Module) -> None:
        """After the last epoch, before the selected weights are restored and evaluated."""

    def on_fit_end(self) -> None:
        """At the very end of a training run, after metrics.json is written."""

    def summary(self) -> dict[str, Any]:
        """JSON-able statistics of the run so far (e.g. MLA's trace(P)/s per epoch); the
        trainer writes a non-empty one into ``metrics.json`` under the hook's ``name`` and
        logs its lists' latest values to TensorBoard.  Must be equal on every rank."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


MOMENTS = (
    "setup",
    "on_train_start",
    "on_train_epoch_start",
    "on_before_optimizer_step",
    "on_after_optimizer_step",
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_validation_end",
    "on_train_end",
    "on_fit_end",
)

HOOKS: dict[str, type[TrainingHook]] = {}
MODEL_HOOKS: set[str] = set()  # built by their model from its config, not by training.hooks
LOOP_CALLBACKS: set[str] = set()  # the loop's own concerns, listed in training.callbacks


def register_hook(name: str, *, model_hook: bool = False, callback: bool = False):
    """Class decorator: register a :class:`TrainingHook` subclass under ``name`` (which
    becomes its ``name``).  ``model_hook``: the hook needs parts of its model (MLA's head)
    and is built by the model's ``training_hooks()``, so ``training.hooks`` refuses it.
    ``callback``: one of the loop's callbacks, listed in ``training.callbacks`` (and
    refused in ``training.hooks``)."""

    def wrap(cls):
        if not (isinstance(cls, type) and issubclass(cls, TrainingHook)):
            raise TypeError(f"hook {name!r}: {cls!r} is not a TrainingHook subclass")
        if name in HOOKS and HOOKS[name].__qualname__ != cls.__qualname__:
            raise ValueError(f"training hook name {name!r} is already registered by {HOOKS[name]}")
        cls.name = name
        HOOKS[name] = cls
        if model_hook:
            MODEL_HOOKS.add(name)
        if callback:
            LOOP_CALLBACKS.add(name)
        return cls

    return wrap


def build_hooks(
    specs: Sequence[Any] | None, where: str = "training.hooks", callbacks: bool = False
) -> list[TrainingHook]:
    """User hooks (``callbacks``: the loop's callbacks) from config: each entry a
    registered name, or a mapping ``{type: name, params: {...}}`` (the form of MMF main's
    ``training.callbacks``), built as ``HOOKS[name](**params)``.  An unknown name, a
    model's own hook, a hook of the other list, a bad entry or parameters the hook does
    not take are errors naming the entry."""
    hooks = []
    other = "training.hooks" if callbacks else "training.callbacks"
    for i, spec in enumerate(specs or []):
        at = f"{where}[{i}]"
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, Mapping) and set(spec) <= {"type", "params"} and "type" in spec:
            name, params = spec["type"], dict(spec.get("params") or {})
        else:
            raise ValueError(
                f"{at}: {spec!r} must be a hook name or a mapping with 'type' (a hook name) "
                "and optional 'params'"
            )
        user = sorted(LOOP_CALLBACKS if callbacks else set(HOOKS) - MODEL_HOOKS - LOOP_CALLBACKS)
        if name in HOOKS and name not in MODEL_HOOKS and (name in LOOP_CALLBACKS) != callbacks:
            raise ValueError(
                f"{at}: {name!r} belongs in {other}; names that can be listed here: "
                f"{', '.join(user) or 'none'}"
            )
        if name in MODEL_HOOKS:
            raise ValueError(
                f"{at}: {name!r} is built by its model from model_config (not listed in "
                f"training.hooks); hooks that can be listed: {', '.join(user) or 'none'}"
            )
        if name not in HOOKS:
            raise ValueError(
                f"{at}: no training hook named {name!r}; registered: {', '.join(user) or 'none'}"
            )
        try:
            hooks.append(HOOKS[name](**params))
        except TypeError as e:
            raise ValueError(f"{at}: hook {name!r} with params {params}: {e}") from None
    return hooks


def hook_names(hooks: Sequence[TrainingHook]) -> list[str]:
    """The hooks' names, in order; a hook without a name or a repeated name is an error."""
    names = [h.name for h in hooks]
    unnamed = [type(h).__name__ for h in hooks if not h.name]
    if unnamed:
        raise ValueError(f"training hooks without a name: {unnamed}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"training hooks share the names {repeated} (all: {names}); "
            "each hook's name must be unique"
        )
    return names


@register_hook("grad_norm")
class GradNormHook(TrainingHook):
    """A user hook (``training.hooks: [grad_norm]``): the L2 norm of all the model's
    gradients at ``on_before_optimizer_step``, after the hooks listed before it (so after
    MLA's projection and OGM-GE's modulation), averaged per epoch over the steps fp16 did
    not skip.  ``summary()``: ``{"mean_l2": [one value per epoch]}``; its sums are saved
    with the hook state, so a resumed run reports the same numbers."""

    def __init__(self):
        self.sums: dict[int, float] = {}
        self.counts: dict[int, int] = {}

    @torch.no_grad()
    def on_before_optimizer_step(self, step: Step) -> None:
        if step.skipped:
            return
        norms = [
            p.grad.detach().float().norm() for p in step.model.parameters() if p.grad is not None
        ]
        if not norms:
            return
        total = float(torch.linalg.vector_norm(torch.stack(norms)))
        self.sums[step.epoch] = self.sums.get(step.epoch, 0.0) + total
        self.counts[step.epoch] = self.counts.get(step.epoch, 0) + 1

    def summary(self) -> dict[str, Any]:
        return {"mean_l2": [self.sums[e] / self.counts[e] for e in sorted(self.sums)]}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {int(e): float(v) for e, v in state["sums"].items()}
        self.counts = {int(e): int(v) for e, v in state["counts"].items()}
