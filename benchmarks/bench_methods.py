"""Each balanced-learning method's training step time over concat's, in one run.

One row per registered method of the ``modulation`` and ``staged`` sets
(``mla_plugin.leaderboard.methods``: a method merged later gets its row), plus OGM-GE and
MLA.  Every model is built through the plugin's MMF classes with the same ResNet-18 audio
and video encoders (same seed) and its package defaults, and trained by the trainer's own
``train_batch`` on the same batches (the shapes of bench_mla_vs_concat.py).  Per round every
method takes ``--inner`` steps, in an order reversed every other round, and concat runs
before each of them, so each method's ratio to concat is taken against the concat steps
next to it; the median over rounds is reported.  A staged method is timed in the stage it
is built in; work a method does once per epoch (LFM's weight update) is not a step's.

    .venv/bin/python benchmarks/bench_methods.py [--rounds 15] [--methods ogm_ge mla ...]
"""

import statistics
import time

import torch
from _common import AV_ENCODERS, Loop, av_batches, av_parser, build, summary, verdict

from mla_plugin.leaderboard.methods import MODULATION_METHODS, STAGED_METHODS, registered

# --quick (the smoke test): small conv encoders, so the run stays short as methods are added
QUICK_ENCODERS = {
    "audio": {"type": "conv", "params": {"in_channels": 1, "out_dim": 16, "width": 8}},
    "video": {
        "type": "conv",
        "params": {"in_channels": 3, "out_dim": 16, "width": 8, "frames": True},
    },
}
COST_NOTE = 1.5  # docs: a method over 1.5x concat's step says so in its section


def methods() -> list[str]:
    """The timed methods, in a stable order: the two sets' registered members, then
    OGM-GE and MLA."""
    return list(dict.fromkeys([*registered(MODULATION_METHODS + STAGED_METHODS), "ogm_ge", "mla"]))


def main(argv=None):
    p = av_parser(__doc__, batch=8)
    p.add_argument("--methods", nargs="*", help="only these (default: every row)")
    args = p.parse_args(argv)
    batches = av_batches(args, "batch", "")
    if args.quick:  # every row once, on small conv encoders: the rows grow with the sets
        args.rounds = 1
        print("--quick: small conv encoders instead of ResNet-18")
    names = args.methods or methods()
    encoders = QUICK_ENCODERS if args.quick else AV_ENCODERS
    loops = {n: Loop(*build(n, encoders), heldout=batches[:1]) for n in ["concat", *names]}
    counter = {n: 0 for n in loops}

    def timed(name) -> float:
        start = time.perf_counter()
        for _ in range(args.inner):
            loops[name].step(batches[counter[name] % len(batches)])
            counter[name] += 1
        return (time.perf_counter() - start) / args.inner

    for n in loops:  # warm-up
        timed(n)
    times = {n: [] for n in loops}
    ratios = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            base = timed("concat")
            t = timed(n)
            times["concat"].append(base)
            times[n].append(t)
            ratios[n].append(t / base)
    print(f"concat step seconds {summary(times['concat'])}")
    print("| method | step (s) | / concat (median, min-max) |")
    print("|---|---|---|")
    for n in names:
        r = ratios[n]
        print(
            f"| {n} | {statistics.median(times[n]):.4f} | {statistics.median(r):.3f} "
            f"({min(r):.3f}-{max(r):.3f}){' over 1.5' if statistics.median(r) > COST_NOTE else ''} |"
        )
    for n in names:
        print(verdict(f"{n}_over_concat_step_time", statistics.median(ratios[n]), None))


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
