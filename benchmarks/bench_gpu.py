"""Samples/s of CREMA-D-shaped audio-video ResNet-18 training on GPUs, measured through
the trainer itself: MLA against concat, in fp32, bf16 and fp16, on one GPU and, when the
machine has more, DDP over all of them (``torchrun``).  Run through
``benchmarks/gpu.sh``; writes its table into docs/benchmarks.md (between the
``gpu-results`` markers) with the card named.

What is timed: the plugin's :class:`~mla_plugin.trainers.multimodal.MultimodalTrainer`,
built and loaded as ``mmf_run`` builds it (MMF's ``Configuration``, ``build_trainer``,
``load``) from a config with the CREMA-D encoders (ResNet-18 audio and video) and 6
classes and ``training.precision`` / ``training.channels_last`` set, stepping batches
through its own ``_train_batch``: the forward under its autocast, its GradScaler, the
gradient all-reduce, HGM, the optimizer.  The batches are synthetic tensors of CREMA-D's
real shapes, already on the GPU (a 1x1024x128 fbank and 3 frames of 3x224x224 per
sample, batch 64 in all, halved until it fits), so the figure is the training step's and
not the data loader's.  The config's dataset (``synthetic``, tiny) is only built because
``load`` builds one.

On a machine without MMF (a lent GPU machine may hold PyTorch alone) the same networks
are assembled from the framework-free core (``mla_plugin.core``: the ResNet-18 encoders,
the shared head with the HGM hook, ``ConcatHead``) and stepped by a copy of the loop's
order with the same :class:`~mla_plugin.core.precision.MixedPrecision`; the table says
which path ran.  ``--core`` forces the second path.

``--smoke``: tiny shapes, 2 steps, on the CPU (seconds); prints the table, writes no docs
unless ``--out`` is given.
"""

import argparse
import dataclasses
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
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
    """``mla_plugin.core``'s modules (framework-free: they load neither MMF nor the bridge)."""
    return types.SimpleNamespace(
        **{
            m: importlib.import_module(f"mla_plugin.core.{m}")
            for m in ("encoders", "fusion_heads", "hgm", "hooks", "losses", "precision")
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


def make_batch(batch_size, shapes, device, keys=("audio", "video")):
    """A batch of CREMA-D's shapes: fbank [B, 1, T, F], frames [B, T, 3, H, W], targets,
    an all-present mask and indices; a SampleList when MMF is there, else a dict."""
    g = torch.Generator().manual_seed(0)
    audio, video = keys
    batch = {
        audio: torch.randn(batch_size, 1, *shapes["fbank"], generator=g),
        video: torch.randn(
            batch_size, shapes["frames"], 3, shapes["size"], shapes["size"], generator=g
        ),
        "targets": torch.randint(0, NUM_CLASSES, (batch_size,), generator=g),
        "mask": torch.ones(batch_size, 2, dtype=torch.bool),
        "index": torch.arange(batch_size),
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    try:  # the MMF models read a SampleList; the core ones a dict
        from mmf.common.sample import SampleList

        return SampleList(batch)
    except ImportError:
        return batch


TRAINER_CONFIG = """\
# written by benchmarks/bench_gpu.py: the CREMA-D encoders on a tiny synthetic dataset
includes:
  - {repo}/projects/mla/configs/defaults.yaml
model: {method}
datasets: synthetic
multimodal:
  modalities: [audio, video]
  num_classes: {classes}
  encoders:
    audio: {{type: resnet18, params: {{in_channels: 1, out_dim: 512}}}}
    video: {{type: resnet18, params: {{in_channels: 3, frames: true, out_dim: 512}}}}
dataset_config:
  synthetic:
    modalities: [audio, video]
    num_classes: {classes}
    sizes: {{train: {batch}, val: {batch}, test: {batch}}}
"""


class TrainerBench:
    """The plugin's MultimodalTrainer, built and loaded as ``mmf_run`` does, stepping
    CREMA-D-shaped batches through its own ``_train_batch``."""

    def __init__(self, method, precision, device, batch_size, channels_last, workdir):
        import argparse as ap

        from mmf.utils.build import build_config, build_trainer
        from mmf.utils.configuration import Configuration

        import mla_plugin

        mla_plugin.register()

        config = os.path.join(workdir, f"{method}.yaml")
        with open(config, "w") as f:
            f.write(
                TRAINER_CONFIG.format(
                    repo=REPO, method=method, classes=NUM_CLASSES, batch=batch_size
                )
            )
        opts = [
            f"config={config}",
            f"env.save_dir={os.path.join(workdir, method + '_' + precision)}",
            f"training.precision={precision}",
            f"training.channels_last={channels_last}",
            f"training.device={device.type}",
            f"training.batch_size={batch_size}",
            "training.progress_bar=False",
            "training.log_interval=0",
            # a timing set of a few batches need not hold every class
            "protocol.empty_classes=allow",
            f"device_id={device.index or 0}",
        ]
        args = ap.Namespace(opts=opts, config_override=None)
        configuration = Configuration(args)
        configuration.args = args
        self.trainer = build_trainer(build_config(configuration))
        # the timed batches are made up here in the benchmark's shapes, not the config's
        # placeholder dataset's, so the trainer's dry forward pass over that dataset is off
        import mla_plugin.trainers.multimodal as multimodal

        dry_forward, multimodal.dry_forward = multimodal.dry_forward, lambda *a, **k: None
        try:
            self.trainer.load()
        finally:
            multimodal.dry_forward = dry_forward
        self.trainer.model.train()
        for hook in self.trainer.hooks:
            hook.on_train_start(self.trainer.model)
            hook.on_train_epoch_start(1, self.trainer.ctx.num_batches)

    def step(self, batch):
        self.trainer.train_batch(batch)
        ctx = self.trainer.ctx
        ctx.iteration += 1
        ctx.batch_in_epoch = (ctx.batch_in_epoch + 1) % ctx.num_batches


class CoreBench:
    """Without MMF: the core networks stepped in the trainer's order (see the module
    docstring) with the trainer's MixedPrecision."""

    def __init__(self, method, precision, device, batch_size, channels_last, workdir):
        core = _core()
        torch.manual_seed(0)
        self.model = CoreModel(method, core).to(device)
        if channels_last:
            core.encoders.use_channels_last(self.model)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4
        )
        self.hooks = self.model.training_hooks()
        self.model.train()
        self.amp = core.precision.MixedPrecision(precision, device)
        self.iteration = 0
        for hook in self.hooks:
            hook.on_train_start(self.model)
            hook.on_train_epoch_start(1, 100)

    def step(self, batch):
        steps = iter(self.model.training_steps(batch, self.iteration))
        while True:
            with self.amp.autocast():  # the forward runs inside next()
                ts = next(steps, None)
            if ts is None:
                break
            self.optimizer.zero_grad(set_to_none=True)
            self.amp.backward(ts.loss)  # one process: nothing to average over ranks
            finite = self.amp.unscale(self.optimizer)
            step = dataclasses.replace(
                ts,
                model=self.model,
                optimizer=self.optimizer,
                batch=batch,
                epoch=1,
                batch_index=self.iteration % 100,
                num_batches=100,
                global_step=self.iteration,
                skipped=not finite,
            )
            for hook in self.hooks:
                hook.on_before_optimizer_step(step)
            self.amp.step(self.optimizer)
            for hook in self.hooks:
                hook.on_after_optimizer_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method, precision, args, shapes, device, world=1):
    """(samples/s of all ranks over ``args.steps`` timed steps, global batch used, peak
    GiB on this rank); halves the batch on out-of-memory."""
    batch_size = args.batch
    bench_cls = CoreBench if args.core else TrainerBench
    while True:
        bench = batch = None
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            with tempfile.TemporaryDirectory() as workdir:
                bench = bench_cls(
                    method, precision, device, batch_size, args.channels_last, workdir
                )
                keys = ("audio", "video")
                batch = make_batch(batch_size // world, shapes, device, keys)
                for _ in range(args.warmup):
                    bench.step(batch)
                sync(device)
                runs = []
                for _ in range(args.repeats):
                    if world > 1:
                        torch.distributed.barrier()
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        bench.step(batch)
                    sync(device)
                    runs.append(batch_size * args.steps / (time.perf_counter() - start))
            peak = (
                torch.cuda.max_memory_allocated(device) / 2**30
                if device.type == "cuda"
                else float("nan")
            )
            return statistics.median(runs), batch_size, peak
        except torch.cuda.OutOfMemoryError:
            del bench, batch
            if batch_size <= world:
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
            "models from `mla_plugin.core`, stepped in the trainer's order (no MMF here)"
            if use_core
            else "timed through the plugin's MultimodalTrainer (`_train_batch`)"
        )
        + f"; {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        f"Command: `bash benchmarks/gpu.sh{' --smoke' if args.smoke else ''}"
        f"{' --channels-last' if args.channels_last else ''}`; "
        f"fbank 1x{shapes['fbank'][0]}x{shapes['fbank'][1]}, "
        f"{shapes['frames']} frames of 3x{shapes['size']}x{shapes['size']}, "
        f"{args.warmup} warm-up + {args.repeats}x{args.steps} timed steps, median of the repeats; "
        "batch is the global batch (split over the GPUs under DDP), samples/s of all GPUs.",
        "",
        "| method | precision | GPUs | batch | samples/s | MLA / concat time "
        "| speed-up over fp32 | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["method"], r["precision"], r["gpus"]): r for r in rows}
    for r in rows:
        concat = by.get(("concat", r["precision"], r["gpus"]))
        fp32 = by.get((r["method"], "fp32", r["gpus"]))
        ratio = (
            f"{concat['samples_per_s'] / r['samples_per_s']:.3f}"
            if r["method"] == "mla" and concat
            else ""
        )
        speedup = f"{r['samples_per_s'] / fp32['samples_per_s']:.2f}x" if fp32 else ""
        lines.append(
            f"| {r['method']} | {r['precision']} | {r['gpus']} | {r['batch']} | "
            f"{r['samples_per_s']:.1f} | {ratio} | {speedup} | {r['peak_gib']:.1f} |"
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


def measure_all(args, shapes, device, world):
    rows = []
    for precision in args.precisions:
        for method in args.methods:
            sps, batch, peak = measure(method, precision, args, shapes, device, world)
            rows.append(
                {
                    "method": method,
                    "precision": precision,
                    "gpus": world,
                    "batch": batch,
                    "samples_per_s": sps,
                    "peak_gib": peak,
                }
            )
            if int(os.environ.get("RANK", "0")) == 0:
                print(
                    f"{method:6s} {precision} x{world}: {sps:9.2f} samples/s "
                    f"(batch {batch}, peak {peak:.1f} GiB)",
                    flush=True,
                )
    return rows


def ddp_rows(argv, processes):
    """The same measurements under ``torchrun --standalone`` with ``processes`` ranks
    (NCCL on GPUs, gloo on the CPU), as rows; rank 0 writes them to a temporary file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            os.path.abspath(__file__),
            *argv,
            "--ddp-rows",
            out,
        ]
        print("DDP: " + " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
        with open(out) as f:
            return json.load(f)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
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
    p.add_argument("--channels-last", action="store_true", help="training.channels_last=True")
    p.add_argument(
        "--ddp",
        type=int,
        default=None,
        help="also measure DDP over this many processes (default: every GPU when there "
        "are more than one; none with --smoke)",
    )
    p.add_argument("--ddp-rows", default=None, help=argparse.SUPPRESS)  # set for torchrun
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
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if args.smoke:
        shapes = {"fbank": (16, 16), "frames": 1, "size": 16}
        args.batch, args.steps, args.warmup, args.repeats = 2 * world, 2, 0, 1
        device = torch.device("cpu")
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit(
                "no CUDA device: run on a GPU machine, or pass --smoke for the CPU check"
            )
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        args.out = args.out or os.path.join(REPO, "docs", "benchmarks.md")
    args.core = args.core or not _have_mmf()
    if world > 1:  # a torchrun rank (see ddp_rows)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rows = measure_all(args, shapes, device, world)
        if rank == 0:
            with open(args.ddp_rows, "w") as f:
                json.dump(rows, f)
        torch.distributed.destroy_process_group()
        return
    print(
        f"device: {device_name(device)}; torch {torch.__version__}; "
        f"{'core' if args.core else 'MMF trainer'} models; shapes {shapes}; batch {args.batch}",
        flush=True,
    )
    rows = measure_all(args, shapes, device, 1)
    processes = args.ddp
    if processes is None:
        count = torch.cuda.device_count() if device.type == "cuda" else 0
        processes = count if count > 1 else 0
    if processes > 1:
        rows += ddp_rows(argv, processes)
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
