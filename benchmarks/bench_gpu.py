"""Samples/s of CREMA-D-shaped audio-video ResNet-18 training on one GPU: MLA against
concat, in fp32 and under mixed precision (``torch.autocast`` bf16, and fp16 with a
GradScaler).  Run through ``benchmarks/gpu.sh``; writes its table into
docs/benchmarks.md (between the ``gpu-results`` markers) with the card named.

Inputs are synthetic tensors of CREMA-D's real shapes: a 1x1024x128 fbank and 3 frames of
3x224x224 per sample, batch 64 (halved until it fits, if memory runs out), 6 classes.

Models: MLA and concat built through the plugin's MMF model classes when MMF is
importable; on a machine without MMF (the lent GPU machines hold PyTorch but not MMF)
the same networks are assembled from the plugin's framework-free core
(``mla_plugin.core``: the same ResNet-18 encoders, ``nn.Linear`` shared head with the
HGM hook, ``ConcatHead``).  ``--core`` forces the second path.

One training step mirrors the trainer's loop (``mla_plugin/trainers/multimodal.py``),
with the forward under autocast and the loss scaled for fp16::

    zero_grad -> scaler.scale(loss).backward() -> scaler.unscale_ -> hooks.after_backward
              -> scaler.step(optimizer) -> scaler.update() -> hooks.after_step

``--smoke``: tiny shapes, 2 steps, on the CPU (seconds); prints the table, writes no docs
unless ``--out`` is given.
"""

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import statistics
import sys
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch import nn  # noqa: E402

BEGIN, END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"
ENCODERS = {
    "audio": {"type": "resnet18", "params": {"in_channels": 1}},
    "video": {"type": "resnet18", "params": {"in_channels": 3, "frames": True}},
}
NUM_CLASSES = 6  # CREMA-D's emotions


def _have_mmf() -> bool:
    try:
        importlib.import_module("mmf")
        importlib.import_module("omegaconf")
        return True
    except ImportError:
        return False


def _core():
    """``mla_plugin.core`` without the package's ``__init__`` (which switches MMF on)."""
    if "mla_plugin" not in sys.modules:
        stub = types.ModuleType("mla_plugin")
        stub.__path__ = [os.path.join(REPO, "mla_plugin")]
        sys.modules["mla_plugin"] = stub
    return types.SimpleNamespace(
        **{
            m: importlib.import_module(f"mla_plugin.core.{m}")
            for m in ("encoders", "fusion_heads", "hgm", "hooks", "losses")
        }
    )


class CoreModel(nn.Module):
    """MLA or concat from the core alone: what the MMF classes build, without MMF."""

    def __init__(self, method: str, core):
        super().__init__()
        self.method, self.core = method, core
        self.modalities = list(ENCODERS)
        self.encoders = nn.ModuleDict(
            {m: core.encoders.build_encoder(ENCODERS[m]) for m in self.modalities}
        )
        dim = self.encoders["audio"].out_dim
        if method == "mla":
            self.head = nn.Linear(dim, NUM_CLASSES)
            nn.init.xavier_normal_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        else:
            self.head = core.fusion_heads.ConcatHead(self.modalities, dim, NUM_CLASSES)

    def presence(self, batch):
        return None

    def training_steps(self, batch, iteration):
        feats = {m: self.encoders[m](batch[m]) for m in self.modalities}
        ce = self.core.losses.masked_cross_entropy
        if self.method == "concat":
            fused, _ = self.head(feats)
            yield self.core.hooks.Step(loss=ce(fused, batch["targets"]), features=feats)
            return
        for i, m in enumerate(self.modalities):
            yield self.core.hooks.Step(
                loss=ce(self.head(feats[m]), batch["targets"]),
                modality=m,
                modality_index=i,
                features=feats,
            )

    def training_hooks(self):
        """The MLA model's hook, with the switches of ``model_config.mla`` in mla.yaml."""
        cfg = _mla_defaults()
        if self.method != "mla" or cfg["hgm"] == "off":
            return []
        alpha = float(cfg["hgm_alpha_const"]) if cfg["hgm_alpha"] == "const" else "schedule"
        return [
            self.core.hgm.HeadGradientModification(
                self.head,
                mode=cfg["hgm"],
                alpha=alpha,
                p_frob_norm=cfg["p_frob_norm"],
                project_bias=cfg["project_bias"],
                project_full_update=cfg["project_full_update"],
                mean=cfg["hgm_mean"],
                mean_decay=float(cfg["hgm_mean_decay"]),
                reset=cfg["hgm_reset"],
            )
        ]


def _mla_defaults():
    """``model_config.mla`` of ``mla_plugin/configs/models/mla.yaml``, read without PyYAML
    (this path needs only PyTorch): its flat ``key: scalar`` lines, true/false as bools."""
    values = {}
    with open(os.path.join(REPO, "mla_plugin", "configs", "models", "mla.yaml")) as f:
        for line in f:
            key, sep, value = line.split("#")[0].strip().partition(":")
            if sep and value.strip():
                values[key] = {"true": True, "false": False}.get(value.strip(), value.strip())
    return values


def build(method: str, use_core: bool, device):
    torch.manual_seed(0)
    if use_core:
        core = _core()
        model = CoreModel(method, core).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        return model, optimizer, model.training_hooks()
    from _common import build as mmf_build

    return mmf_build(method, ENCODERS, NUM_CLASSES, device=device)


def make_batch(batch_size, shapes, device):
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": torch.randn(batch_size, 1, *shapes["fbank"], generator=g),
        "video": torch.randn(
            batch_size, shapes["frames"], 3, shapes["size"], shapes["size"], generator=g
        ),
        "targets": torch.randint(0, NUM_CLASSES, (batch_size,), generator=g),
        "mask": torch.ones(batch_size, 2, dtype=torch.bool),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    try:  # the MMF models read a SampleList; the core ones a dict
        from mmf.common.sample import SampleList

        return SampleList(batch)
    except ImportError:
        return batch


class Trainer:
    """One method at one precision: the trainer's step, with autocast and loss scaling."""

    def __init__(self, method, precision, use_core, device):
        self.model, self.optimizer, self.hooks = build(method, use_core, device)
        self.model.train()
        self.device, self.precision, self.iteration = device, precision, 0
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        for hook in self.hooks:
            hook.on_train_start(self.model)
            hook.on_epoch_start(1, 100)

    def step(self, batch):
        steps = iter(self.model.training_steps(batch, self.iteration))
        mask = self.model.presence(batch)
        while True:
            with self.autocast():  # the forward (and the next modality's logits) under autocast
                ts = next(steps, None)
            if ts is None:
                break
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(ts.loss).backward()
            self.scaler.unscale_(self.optimizer)
            step = dataclasses.replace(
                ts,
                model=self.model,
                optimizer=self.optimizer,
                batch=batch,
                epoch=1,
                batch_index=self.iteration % 100,
                num_batches=100,
                global_step=self.iteration,
                mask=mask,
            )
            for hook in self.hooks:
                hook.after_backward(step)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for hook in self.hooks:
                hook.after_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method, precision, args, shapes, device):
    """(samples/s over ``args.steps`` timed steps, batch used, peak GiB); halves the
    batch on out-of-memory."""
    batch_size = args.batch
    while True:
        trainer = batch = None
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            trainer = Trainer(method, precision, args.core, device)
            batch = make_batch(batch_size, shapes, device)
            for _ in range(args.warmup):
                trainer.step(batch)
            sync(device)
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for _ in range(args.steps):
                    trainer.step(batch)
                sync(device)
                runs.append(batch_size * args.steps / (time.perf_counter() - start))
            peak = (
                torch.cuda.max_memory_allocated(device) / 2**30
                if device.type == "cuda"
                else float("nan")
            )
            return statistics.median(runs), batch_size, peak
        except torch.cuda.OutOfMemoryError:
            del trainer, batch
            if batch_size == 1:
                raise
            batch_size //= 2
            print(
                f"  {method} {precision}: out of memory, retrying with batch {batch_size}",
                flush=True,
            )


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return "CPU: " + next(
            ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")
        )
    except (OSError, StopIteration, subprocess.SubprocessError):
        return "CPU: " + (platform.processor() or "unknown")


def markdown(rows, args, shapes, device, use_core):
    lines = [
        f"Card: **{device_name(device)}**; torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if device.type == "cuda" else "")
        + "; "
        + (
            "models from `mla_plugin.core` (no MMF on this machine)"
            if use_core
            else "models from the plugin's MMF classes"
        )
        + f"; {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        f"Command: `bash benchmarks/gpu.sh{' --smoke' if args.smoke else ''}`; "
        f"fbank 1x{shapes['fbank'][0]}x{shapes['fbank'][1]}, "
        f"{shapes['frames']} frames of 3x{shapes['size']}x{shapes['size']}, "
        f"{args.warmup} warm-up + {args.repeats}x{args.steps} timed steps, median of the repeats.",
        "",
        "| method | precision | batch | samples/s | MLA / concat time | speed-up over fp32 | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {(r["method"], r["precision"]): r for r in rows}
    for r in rows:
        concat = by.get(("concat", r["precision"]))
        fp32 = by.get((r["method"], "fp32"))
        ratio = (
            f"{concat['samples_per_s'] / r['samples_per_s']:.3f}"
            if r["method"] == "mla" and concat
            else ""
        )
        speedup = f"{r['samples_per_s'] / fp32['samples_per_s']:.2f}x" if fp32 else ""
        lines.append(
            f"| {r['method']} | {r['precision']} | {r['batch']} | {r['samples_per_s']:.1f} | {ratio} | "
            f"{speedup} | {r['peak_gib']:.1f} |"
        )
    return "\n".join(lines)


def write_section(path, text):
    """Replace the text between the gpu-results markers of ``path`` (append them if absent)."""
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny shapes, 2 steps, CPU")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["mla", "concat"], choices=["mla", "concat"])
    p.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16", "fp16"],
        choices=["fp32", "bf16", "fp16"],
    )
    p.add_argument(
        "--core", action="store_true", help="build from mla_plugin.core even if MMF is there"
    )
    p.add_argument(
        "--out",
        default=None,
        help="markdown file to update (default docs/benchmarks.md; none with --smoke)",
    )
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    shapes = {"fbank": (1024, 128), "frames": 3, "size": 224}
    if args.smoke:
        shapes = {"fbank": (16, 16), "frames": 1, "size": 16}
        args.batch, args.steps, args.warmup, args.repeats = 2, 2, 0, 1
        device = torch.device("cpu")
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit(
                "no CUDA device: run on a GPU machine, or pass --smoke for the CPU check"
            )
        device = torch.device("cuda", 0)
        torch.backends.cudnn.benchmark = True
        args.out = args.out or os.path.join(REPO, "docs", "benchmarks.md")
    args.core = args.core or not _have_mmf()
    print(
        f"device: {device_name(device)}; torch {torch.__version__}; "
        f"{'core' if args.core else 'MMF'} models; shapes {shapes}; batch {args.batch}",
        flush=True,
    )
    rows = []
    for precision in args.precisions:
        for method in args.methods:
            sps, batch, peak = measure(method, precision, args, shapes, device)
            rows.append(
                {
                    "method": method,
                    "precision": precision,
                    "batch": batch,
                    "samples_per_s": sps,
                    "peak_gib": peak,
                }
            )
            print(
                f"{method:6s} {precision}: {sps:9.2f} samples/s (batch {batch}, peak {peak:.1f} GiB)",
                flush=True,
            )
    table = markdown(rows, args, shapes, device, args.core)
    print(table)
    if args.out:
        write_section(args.out, table)
        print(f"wrote the table into {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device_name(device), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
