"""Bytes of ``best.ckpt`` (weights only) and ``current.ckpt`` (full state) for the
project's configs, measured: the model, optimizer and hooks are built as the trainer builds
them (MMF's ``build_model``/``build_optimizer``), one SGD step on zero gradients fills the
momentum buffers, and the trainer's own ``_best_state``/``_state`` are ``torch.save``-d.

    .venv/bin/python benchmarks/ckpt_sizes.py [--configs avdigits cremad]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _common import REPO, build  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from mla_plugin.core.precision import MixedPrecision  # noqa: E402
from mla_plugin.trainers.checkpointing import best_state, full_state  # noqa: E402
from mla_plugin.trainers.context import RunContext  # noqa: E402


def sizes(name: str, method: str = "mla") -> dict:
    cfg = OmegaConf.load(os.path.join(REPO, "projects", "mla", "configs", f"{name}.yaml"))
    mm = OmegaConf.to_container(cfg.multimodal, resolve=True)
    model, optimizer, hooks = build(method, mm["encoders"], int(mm["num_classes"] or 2))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # momentum buffers, as after the first update
    ctx = RunContext(
        config=cfg,
        writer=None,
        device=torch.device("cpu"),
        amp=MixedPrecision("fp32", "cpu"),
        model=model,
        optimizer=optimizer,
        lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 70),
        hooks=hooks,
        epoch=1,
        batch_in_epoch=0,
        iteration=1,
        num_updates=1,
        best={"value": 0.5, "update": 1, "epoch": 1},
    )
    out = {"parameters": sum(p.numel() for p in model.parameters())}
    with tempfile.TemporaryDirectory() as d:
        for label, state in (
            ("best", best_state(ctx)),
            ("current", full_state(ctx)),
        ):
            path = os.path.join(d, label)
            torch.save(state, path)
            out[label] = os.path.getsize(path)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["avdigits", "cremad"])
    p.add_argument("--method", default="mla")
    args = p.parse_args(argv)
    for name in args.configs:
        s = sizes(name, args.method)
        print(
            f"RESULT ckpt_bytes {name} {args.method}: {s['parameters']} parameters, best.ckpt "
            f"{s['best']} ({s['best'] / 2**20:.2f} MiB), current.ckpt {s['current']} "
            f"({s['current'] / 2**20:.2f} MiB), ratio {s['best'] / s['current']:.3f}"
        )


if __name__ == "__main__":
    main()
