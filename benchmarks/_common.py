"""Shared by the benchmark scripts: models built through the plugin's own MMF classes,
optimizer steps through the trainer's own ``_train_batch``, synthetic audio-video batches
of ResNet-18 shapes, and interleaved timing (A B A B ..., ratio per round, median).

Run from the repository root, e.g. ``.venv/bin/python benchmarks/bench_mla_vs_concat.py``.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import mla_plugin  # noqa: E402
from mla_plugin.core.precision import MixedPrecision  # noqa: E402
from mla_plugin.models.base import CONFIG_DIR  # noqa: E402
from mla_plugin.trainers.context import RunContext  # noqa: E402
from mla_plugin.trainers.multimodal import MultimodalTrainer  # noqa: E402

mla_plugin.register()  # MMF's registry: the plugin's models, builders, trainer


def cpu_threads() -> int:
    """One intra-op thread unless MLA_BENCH_THREADS says otherwise: on a shared, loaded
    machine OpenMP's thread barriers make 2-thread step times swing tenfold (measured:
    0.5 s vs 3-15 s for the same tiny step); one thread gives stable ratios."""
    n = int(os.environ.get("MLA_BENCH_THREADS", "1"))
    torch.set_num_threads(n)
    return n


DEFAULTS = os.path.join(REPO, "projects", "mla", "configs", "defaults.yaml")
AUDIO_RESNET = {"type": "resnet18", "params": {"in_channels": 1}}
VIDEO_RESNET = {"type": "resnet18", "params": {"in_channels": 3, "frames": True}}
AV_ENCODERS = {"audio": AUDIO_RESNET, "video": VIDEO_RESNET}


def model_config(name: str, encoders: dict, num_classes: int = 6, **overrides):
    """``model_config.<name>`` as the trainer builds it: the package default YAML with
    the ``multimodal`` interpolations filled in, plus ``overrides``."""
    from omegaconf import open_dict

    default = OmegaConf.load(os.path.join(CONFIG_DIR, f"{name}.yaml")).model_config[name]
    with open_dict(default):
        default.modalities = list(encoders)
        default.encoders = encoders
        default.num_classes = num_classes
        for k, v in overrides.items():
            default[k] = v
        default.model = name
    return default


def build(
    name: str, encoders: dict, num_classes: int = 6, seed: int = 0, device="cpu", **overrides
):
    """(model, optimizer, hooks) built exactly as the trainer does (MMF's ``build_model``
    and ``build_optimizer`` with the project's SGD settings).  The same ``seed`` gives
    every method the same encoder initialisation."""
    from mmf.utils.build import build_model, build_optimizer

    torch.manual_seed(seed)
    model = build_model(model_config(name, encoders, num_classes, **overrides)).to(device)
    optimizer = build_optimizer(model, OmegaConf.load(DEFAULTS))
    return model, optimizer, model.training_hooks()


class _QuietWriter:
    """The run's log writer, for hooks that log (their lines are not wanted here)."""

    def write(self, *args, **kwargs) -> None:
        pass


class Loop:
    """A bare run context, so the trainer's own ``train_batch`` (zero_grad -> backward ->
    average_gradients -> hooks.on_before_optimizer_step -> step ->
    hooks.on_after_optimizer_step) runs on a model built here, without datasets.
    ``heldout`` (a list of batches): the run's "val" (and "train") split, and the hooks'
    ``setup(ctx)`` is called, for methods that learn from held-out data (``heldout_loader``)."""

    def __init__(
        self, model, optimizer, hooks, num_batches: int = 100, precision="fp32", heldout=None
    ):
        device = next(model.parameters()).device
        self.ctx = RunContext(
            config=None,
            writer=None,
            device=device,
            model=model,
            optimizer=optimizer,
            hooks=list(hooks),
            num_batches=num_batches,
            max_epochs=10,  # a run's length, for hooks that plan by it (AUG's interval)
            precision=precision,
            amp=MixedPrecision(precision, device),  # training.precision
            # ddp None: training.grad_sync=allreduce; bench_ddp.py sets a DDP wrapper
        )
        self.clip_norm = None  # training.clip_gradients: false
        if heldout is not None:  # "val" and "train" splits of these batches (LFM's weight)
            self.ctx.datasets = {"val": heldout, "train": heldout}
            self.ctx.loader = lambda data, sampler, batch_size=None: iter(data)
            self.ctx.to_device = lambda batch: batch
            self.ctx.writer = _QuietWriter()
            for hook in hooks:
                hook.setup(self.ctx)
        model.train()
        for hook in hooks:
            hook.on_train_start(model)
            hook.on_train_epoch_start(1, num_batches)

    model = property(lambda self: self.ctx.model)
    hooks = property(lambda self: self.ctx.hooks)

    @property
    def ddp(self):
        return self.ctx.ddp

    @ddp.setter
    def ddp(self, wrapper):
        self.ctx.ddp = wrapper

    def step(self, batch) -> float:
        loss = MultimodalTrainer.train_batch(self, batch)
        self.ctx.iteration += 1
        self.ctx.batch_in_epoch = (self.ctx.batch_in_epoch + 1) % self.ctx.num_batches
        return loss


def av_batch(
    batch_size: int = 8,
    fbank=(256, 64),
    frames: int = 2,
    size: int = 64,
    num_classes: int = 6,
    seed: int = 0,
    device="cpu",
):
    """An MMF SampleList of the audio-video shapes: audio [B, 1, T, F] fbank, video
    [B, frames, 3, size, size], targets, an all-present mask and indices."""
    from mmf.common.sample import SampleList

    g = torch.Generator().manual_seed(seed)
    batch = SampleList()
    batch.audio = torch.randn(batch_size, 1, *fbank, generator=g)
    batch.video = torch.randn(batch_size, frames, 3, size, size, generator=g)
    batch.targets = torch.randint(0, num_classes, (batch_size,), generator=g)
    batch.mask = torch.ones(batch_size, 2, dtype=torch.bool)
    batch.index = torch.arange(batch_size)
    return batch.to(device)


def interleaved(
    fns: dict[str, Callable[[], None]], rounds: int, inner: int = 1, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, measured A B A B ... (the order reversed every
    other round) so drift in the machine's speed hits all of them alike."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(inner):
                fns[n]()
            times[n].append((time.perf_counter() - start) / inner)
    return times


def ratios(times: dict[str, list[float]], a: str, b: str) -> list[float]:
    return [x / y for x, y in zip(times[a], times[b], strict=False)]


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.4f} (min {min(values):.4f}, max {max(values):.4f}, n {len(values)})"


def machine() -> str:
    """One line: CPU model, cores, torch and its threads, the load average."""
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            model,
        )
    except (OSError, subprocess.SubprocessError):
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"python {platform.python_version()}, load average {load}"
    )


def verdict(name: str, ratio: float, target: float | None) -> str:
    if target is None:
        return f"RESULT {name} = {ratio:.4f}"
    return f"RESULT {name} = {ratio:.4f} (target <= {target:.2f}: {'met' if ratio <= target else 'MISSED'})"


def av_parser(doc: str, batch: int) -> argparse.ArgumentParser:
    """The options every audio-video step benchmark shares."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--inner", type=int, default=2, help="steps per timed round")
    p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds (for the tests)")
    return p


def av_batches(args, label: str = "batch", note: str = "") -> list:
    """Fix threads, print the machine and shapes, and return 4 audio-video batches
    (tiny ones with ``--quick``, which also cuts rounds, inner steps and batch size)."""
    shapes = dict(fbank=(256, 64), frames=2, size=64)
    if args.quick:
        shapes, args.rounds, args.inner, args.batch = (
            dict(fbank=(32, 16), frames=1, size=16),
            2,
            1,
            2,
        )
    cpu_threads()
    print(machine())
    print(
        f"{label} {args.batch}, audio 1x{shapes['fbank'][0]}x{shapes['fbank'][1]}, video "
        f"{shapes['frames']}x3x{shapes['size']}x{shapes['size']}, ResNet-18 encoders{note}"
    )
    return [av_batch(args.batch, seed=i, **shapes) for i in range(4)]
