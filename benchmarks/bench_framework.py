"""The plugin under MMF over an equivalent plain-PyTorch loop (target <= 1.10).

The job: MLA on ``avdigits`` as ``projects/mla/configs/avdigits.yaml`` configures it (MLP
encoders, batch 64, SGD, StepLR, 15 epochs; per epoch a validation pass, a checkpoint and
model selection; at the end the selected model evaluated on val and test and a report
written).  Two implementations of the same job:

- **plugin**: MMF's trainer built from the config as ``mmf_run`` builds it
  (``tests/conftest.py``'s ``make_trainer``), then ``trainer.train()``;
- **plain**: a hand-written PyTorch loop over the same tensors -- ``TensorDataset`` and
  ``DataLoader`` in the trainer's shuffle order, the same encoders (``build_encoder``,
  same seed), ``nn.Linear`` head, SGD and StepLR with the config's settings (read from
  the YAML files), the method's math from the framework-free core
  (``OrthogonalProjector`` for HGM, ``fusion.fuse`` for entropy fusion), ``torch.save``
  checkpoints, a JSON report.  Both select the same epoch with the same accuracies,
  which the script checks and prints.

Figures, from one run:

1. in-process (default): ``trainer.train()`` against the plain loop, data already in
   memory for both, after one untimed 1-epoch run of each; A B A B ..., ``--rounds``
   pairs, ratio per pair, median.  Two variants: the job as configured, and (when the
   config standardises the audio) both sides on raw audio, which isolates the
   framework from the dataset's standardisation;
2. ``--whole``: whole commands, ``mmf_run config=projects/mla/configs/avdigits.yaml``
   against ``python benchmarks/bench_framework.py --plain-process`` (the plain loop in its
   own process, reading the same fbank cache), start-up (imports, config, data) included.

``--audio-hidden N`` makes the job heavier (the audio MLP's width, 128 in the config) on
both sides; ``--profile`` prints a cProfile of one plugin run.

    .venv/bin/python benchmarks/bench_framework.py [--rounds 5] [--epochs 15] [--whole]
        [--audio-hidden 1024] [--profile] [--quick]
"""

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONFIG = "projects/mla/configs/avdigits.yaml"


def _framework_free(name):
    """``mla_plugin.<name>``, a framework-free module (it loads neither MMF nor the bridge)."""
    return importlib.import_module(f"mla_plugin.{name}")


# --------------------------------------------------------------- the plain loop
def _yaml(path):
    import yaml

    with open(os.path.join(REPO, path)) as f:
        return yaml.safe_load(f) or {}


def _get(tree, dotted, default=None):
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree


def job_settings():
    """What the plain loop needs from the configs (read as plain YAML, no OmegaConf):
    the experiment config's values, else the project defaults' / the package's."""
    exp, defaults = _yaml(CONFIG), _yaml("projects/mla/configs/defaults.yaml")
    package = _yaml("mla_plugin/configs/datasets/avdigits.yaml")
    method = _yaml("mla_plugin/configs/models/mla.yaml")

    def pick(key, *trees):
        for tree in trees:
            value = _get(tree, key)
            if value is not None:
                return value
        return None

    return {
        "encoders": _get(exp, "multimodal.encoders"),
        "num_classes": int(_get(exp, "multimodal.num_classes")),
        "lr": float(pick("optimizer.params.lr", exp, defaults)),
        "momentum": float(pick("optimizer.params.momentum", exp, defaults)),
        "weight_decay": float(pick("optimizer.params.weight_decay", exp, defaults)),
        "step_size": int(pick("scheduler.params.step_size", exp, defaults)),
        "batch_size": int(pick("training.batch_size", exp, defaults)),
        "seed": int(pick("training.seed", exp, defaults)),
        "audio_norm": pick("dataset_config.avdigits.audio_norm", exp, package),
        # MLA's switches, from the experiment config or mla.yaml; the loop itself spells
        # out the rest of mla.yaml's defaults (alpha schedule, only the weight gradient
        # projected, per-batch sequential order)
        **{
            key: pick(f"model_config.mla.{key}", exp, method)
            for key in ("hgm", "p_frob_norm", "fusion", "fusion_entropy")
        },
    }


def _audio_norm():
    return job_settings()["audio_norm"]


def plain_data(max_per_class=None, raw_audio=False):
    """Tensors of the avdigits splits as the plugin trains on them (the config's
    defaults; the audio standardised once, up front, where the config asks for it)."""
    avdigits = _framework_free("data.avdigits")
    norm = None if raw_audio else _audio_norm()
    out = {}
    for split in ("train", "val", "test"):
        d = avdigits.AVDigitsDataset(split, max_per_class=max_per_class)
        audio = d.features["audio"]
        if norm:
            present = d.mask[:, 0].reshape(-1, 1, 1, 1)
            audio = audio.where(~present, (audio - float(norm[0])) / float(norm[1]))
        out[split] = (audio, d.features["image"], d.targets)
    return out


def plain_run(data, epochs, save_dir, audio_hidden=None):
    """MLA on avdigits by hand: the config's encoders, optimizer, schedule, HGM (owm,
    alpha schedule, first step plain), entropy fusion, selection on validation."""
    import copy

    import torch
    from torch import nn
    from torch.nn import functional as F

    encoders_mod = _framework_free("core.encoders")
    projector_mod = _framework_free("core.projector")
    fusion = _framework_free("core.fusion")
    job = job_settings()
    specs = copy.deepcopy(job["encoders"])
    if audio_hidden:
        specs["audio"]["params"]["hidden"] = audio_hidden
    seed, batch_size = job["seed"], job["batch_size"]
    torch.manual_seed(seed)
    encoders = nn.ModuleDict({m: encoders_mod.build_encoder(specs[m]) for m in ("audio", "image")})
    dim = encoders["audio"].out_dim
    head = nn.Linear(dim, job["num_classes"])
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    model = nn.ModuleDict({"encoders": encoders, "head": head})
    opt = torch.optim.SGD(
        model.parameters(), lr=job["lr"], momentum=job["momentum"], weight_decay=job["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=job["step_size"], gamma=0.1)
    projector = projector_mod.OrthogonalProjector(
        dim, mode=job["hgm"], p_frob_norm=job["p_frob_norm"]
    )
    train = torch.utils.data.TensorDataset(*data["train"])
    num_batches = -(-len(train) // batch_size)
    modalities = ["audio", "image"]

    @torch.no_grad()
    def accuracy(split):
        """Fused accuracy and each modality's (the plugin reports all three)."""
        model.eval()
        correct = {"multi": 0, **{m: 0 for m in modalities}}
        audio, image, targets = data[split]
        for i in range(0, len(targets), batch_size):
            y = targets[i : i + batch_size]
            feats = {
                "audio": encoders["audio"](audio[i : i + batch_size]),
                "image": encoders["image"](image[i : i + batch_size]),
            }
            logits = {m: head(feats[m]) for m in modalities}
            fused = fusion.fuse(
                [logits[m] for m in modalities],
                rule=job["fusion"],
                entropy_mode=job["fusion_entropy"],
            )
            correct["multi"] += int((fused.argmax(1) == y).sum())
            for m in modalities:
                correct[m] += int((logits[m].argmax(1) == y).sum())
        model.train()
        return {k: v / len(targets) for k, v in correct.items()}

    steps, best = 0, (-1.0, None)
    os.makedirs(save_dir, exist_ok=True)
    for epoch in range(epochs):
        model.train()
        # the trainer's shuffle (EpochSampler): a permutation seeded by (seed, epoch)
        order = torch.randperm(
            len(train), generator=torch.Generator().manual_seed(seed * 100003 + epoch)
        )
        loader = torch.utils.data.DataLoader(train, batch_size=batch_size, sampler=order.tolist())
        for b, (audio, image, y) in enumerate(loader):
            feats = {"audio": encoders["audio"](audio), "image": encoders["image"](image)}
            for m in modalities:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(head(feats[m]), y).backward()
                if steps > 0:  # HGM: P update (Eq. 3) and projected head gradient (Eq. 4)
                    h_mean = feats[m].detach().sum(0) / len(y)
                    projector.update(h_mean, projector_mod.alpha_schedule(b, num_batches))
                    head.weight.grad = projector.project(head.weight.grad)
                opt.step()
                steps += 1
        sched.step()
        val = accuracy("val")["multi"]
        state = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "P": projector.P,
            "scheduler": sched.state_dict(),
            "epoch": epoch + 1,
        }
        torch.save(state, os.path.join(save_dir, "current.ckpt"))
        if val > best[0]:
            best = (val, epoch + 1)
            torch.save(state, os.path.join(save_dir, "best.ckpt"))
    model.load_state_dict(torch.load(os.path.join(save_dir, "best.ckpt"))["model"])
    report = {"selected_epoch": best[1], "val": accuracy("val"), "test": accuracy("test")}
    with open(os.path.join(save_dir, "metrics.json"), "w") as f:
        json.dump(report, f)
    return report


# ------------------------------------------------------------ the plugin's trainer
def plugin_trainer(save_dir, epochs, quick, raw_audio=False, audio_hidden=None):
    sys.path.insert(0, REPO)
    from tests.support import make_trainer  # the trainer as mmf_run builds it

    opts = [f"training.max_epochs={epochs}"]
    if audio_hidden:
        opts.append(f"multimodal.encoders.audio.params.hidden={audio_hidden}")
    if raw_audio:
        opts.append("dataset_config.avdigits.audio_norm=[]")  # an empty list: no standardisation
    if quick:
        opts.append("dataset_config.avdigits.max_per_class=8")
    return make_trainer(save_dir, *opts, config=os.path.join(REPO, CONFIG))


def in_process(args):
    sys.path.insert(0, HERE)
    from _common import cpu_threads, machine, summary, verdict

    cpu_threads()
    print(machine())
    work = tempfile.mkdtemp(prefix="bench_framework_")
    # "configured": the job as configured; "raw_audio" (when the config standardises the
    # audio): both sides without the standardisation, which the plugin's avdigits dataset
    # applies per batch and the plain loop once, to isolate the framework's own cost.
    variants = ["configured"] + (["raw_audio"] if _audio_norm() and not args.quick else [])
    try:
        data = {
            v: plain_data(8 if args.quick else None, raw_audio=v == "raw_audio") for v in variants
        }
        sizes = [len(d[2]) for d in data["configured"].values()]
        print(
            f"avdigits train/val/test {sizes}, {args.epochs} epochs, {args.rounds} rounds "
            f"(plugin and plain alternating; variants {variants})"
        )
        for v in variants:  # warm-up, not timed: first-use costs (allocator, kernels) of each job
            plugin_trainer(
                os.path.join(work, f"warm_{v}"), 1, args.quick, v == "raw_audio", args.audio_hidden
            ).train()
            plain_run(data[v], 1, os.path.join(work, f"warm_plain_{v}"), args.audio_hidden)
        times = {(v, n): [] for v in variants for n in ("plugin", "plain")}
        reports = {}
        for r in range(args.rounds):
            for v in variants:
                for name in ("plugin", "plain") if r % 2 == 0 else ("plain", "plugin"):
                    save = os.path.join(work, f"{v}_{name}{r}")
                    if name == "plugin":
                        trainer = plugin_trainer(
                            save, args.epochs, args.quick, v == "raw_audio", args.audio_hidden
                        )  # not timed
                        start = time.perf_counter()
                        trainer.train()
                        times[v, name].append(time.perf_counter() - start)
                        with open(os.path.join(save, "metrics.json")) as f:
                            m = json.load(f)
                        reports[v, name] = {
                            "selected_epoch": m["selected_epoch"],
                            "val": m["val"],
                            "test": m["test"],
                        }
                    else:
                        start = time.perf_counter()
                        reports[v, name] = plain_run(data[v], args.epochs, save, args.audio_hidden)
                        times[v, name].append(time.perf_counter() - start)
        for v in variants:
            for name in ("plugin", "plain"):
                print(f"{v:10s} {name:6s} seconds {summary(times[v, name])}")
            a, b = reports[v, "plugin"], reports[v, "plain"]
            same = a["selected_epoch"] == b["selected_epoch"] and all(
                abs(a[s][k] - b[s][k]) < 1e-6 for s in ("val", "test") for k in b[s]
            )
            print(
                f"{v:10s} same selected epoch and val/test accuracies (fused and per modality): {same}; "
                f"plugin test {a['test']}"
            )
            ratio = [x / y for x, y in zip(times[v, "plugin"], times[v, "plain"], strict=False)]
            print(f"{v:10s} plugin/plain per round: {summary(ratio)}")
            name = "plugin_over_plain_train_in_process" + (
                "" if v == "configured" else "_raw_audio"
            )
            print(verdict(name, statistics.median(ratio), 1.10))
        if args.profile:
            import cProfile
            import pstats

            trainer = plugin_trainer(os.path.join(work, "profile"), args.epochs, args.quick)
            prof = cProfile.Profile()
            prof.enable()
            trainer.train()
            prof.disable()
            print("--- plugin trainer.train(), cProfile, top 25 by cumulative time")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def whole(args):
    sys.path.insert(0, HERE)
    from _common import cpu_threads, machine, summary, verdict

    cpu_threads()  # for the line below; the commands get one thread each through the environment
    print(machine())
    env = dict(
        os.environ,
        PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS=os.environ.get("MLA_BENCH_THREADS", "1"),
    )
    env.pop("MLA_BRIDGE_DISABLE", None)
    bindir = os.path.dirname(sys.executable)
    work = tempfile.mkdtemp(prefix="bench_framework_")
    extra = ["dataset_config.avdigits.max_per_class=8"] if args.quick else []
    if args.audio_hidden:
        extra.append(f"multimodal.encoders.audio.params.hidden={args.audio_hidden}")
    cmds = {
        "mmf_run": [
            os.path.join(bindir, "mmf_run"),
            f"config={CONFIG}",
            f"training.max_epochs={args.epochs}",
            *extra,
        ],
        "plain": [
            sys.executable,
            os.path.abspath(__file__),
            "--plain-process",
            f"--epochs={args.epochs}",
            *(["--quick"] if args.quick else []),
            *([f"--audio-hidden={args.audio_hidden}"] if args.audio_hidden else []),
        ],
    }
    print(
        "commands:\n  "
        + "\n  ".join(" ".join(c) + " env.save_dir=..." * (n == "mmf_run") for n, c in cmds.items())
    )
    times = {n: [] for n in cmds}
    try:
        for r in range(args.rounds):
            for n in list(cmds) if r % 2 == 0 else list(cmds)[::-1]:
                save = os.path.join(work, f"{n}{r}")
                cmd = cmds[n] + (
                    [f"env.save_dir={save}"] if n == "mmf_run" else [f"--save-dir={save}"]
                )
                start = time.perf_counter()
                proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
                times[n].append(time.perf_counter() - start)
                if proc.returncode:
                    raise SystemExit(
                        f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for n in times:
        print(f"{n:7s} wall seconds {summary(times[n])}")
    ratio = [a / b for a, b in zip(times["mmf_run"], times["plain"], strict=False)]
    print(f"mmf_run/plain per round: {summary(ratio)}")
    print(verdict("mmf_run_over_plain_whole_command", statistics.median(ratio), None))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--whole", action="store_true", help="time whole commands (start-up included)")
    p.add_argument("--profile", action="store_true", help="cProfile one plugin run")
    p.add_argument(
        "--audio-hidden",
        type=int,
        default=None,
        help="a heavier job: the audio MLP's hidden width (config: 128)",
    )
    p.add_argument("--quick", action="store_true", help="8 clips per class, 2 epochs, 1 round")
    p.add_argument("--plain-process", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--save-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.rounds = min(args.epochs, 2), 1
    if args.plain_process:  # the plain loop as a whole command: load the data, train, report
        import torch

        torch.set_num_threads(int(os.environ.get("MLA_BENCH_THREADS", "1")))
        print(
            json.dumps(
                plain_run(
                    plain_data(8 if args.quick else None),
                    args.epochs,
                    args.save_dir,
                    args.audio_hidden,
                )
            )
        )
    elif args.whole:
        whole(args)
    else:
        in_process(args)


if __name__ == "__main__":
    main()
