"""Evaluation with entropy fusion (Eq. 5-7, per sample) over fixed fusion (target <= 1.02).

Two MLA models with identical weights (same seed), differing only in
``model_config.mla.fusion`` (``entropy`` vs ``fixed``), evaluate the same batches the
way the trainer's ``_predict_split`` does (eval mode, no grad, the model's forward:
both ResNet-18 encoders, the shared head per modality, then the fusion rule), plus
MMF's accuracy metric.  Shapes as bench_mla_vs_concat.py, evaluation batch 16.

Also timed inside the same run: ``fusion.fuse`` alone (wrapped with a timer) as a
fraction of the evaluation step without it.

    .venv/bin/python benchmarks/bench_fusion.py [--rounds 15] [--quick]
"""

import statistics
import time

import torch
from _common import AV_ENCODERS, av_batches, av_parser, build, interleaved, ratios, summary, verdict

from mla_plugin.core import fusion
from mla_plugin.trainers.evaluation import accuracy


def main(argv=None):
    p = av_parser(__doc__, batch=16)
    args = p.parse_args(argv)
    batches = av_batches(args, "evaluation batch", "")
    models = {
        rule: build("mla", AV_ENCODERS, fusion=rule)[0].eval() for rule in ("entropy", "fixed")
    }
    fuse_seconds = {rule: 0.0 for rule in models}
    current = [None]
    inner_fuse = fusion.fuse

    def timed_fuse(*a, **k):
        start = time.perf_counter()
        out = inner_fuse(*a, **k)
        fuse_seconds[current[0]] += time.perf_counter() - start
        return out

    fusion.fuse = timed_fuse  # the model calls fusion.fuse through the module
    counter = {rule: 0 for rule in models}
    per_call = {rule: [] for rule in models}

    def evaluator(rule):
        @torch.no_grad()
        def run():
            current[0] = rule
            before = fuse_seconds[rule]
            batch = batches[counter[rule] % len(batches)]
            out = models[rule](batch)
            accuracy(out["scores"], batch.targets)
            counter[rule] += 1
            per_call[rule].append(fuse_seconds[rule] - before)

        return run

    try:
        times = interleaved({r: evaluator(r) for r in models}, args.rounds, args.inner)
    finally:
        fusion.fuse = inner_fuse
    for r in models:
        print(f"{r:7s} evaluation seconds per batch {summary(times[r])}")
    ratio = ratios(times, "entropy", "fixed")
    print(f"entropy/fixed per round: {summary(ratio)}")
    n = args.rounds * args.inner
    for r in models:
        print(f"fusion.fuse({r}) seconds per batch: {summary(per_call[r][-n:])}")
    steps = [t for t in times["entropy"] for _ in range(args.inner)]
    extra = [
        (e - f) / (t - e)
        for e, f, t in zip(per_call["entropy"][-n:], per_call["fixed"][-n:], steps, strict=False)
    ]
    print(f"(entropy fuse - fixed fuse) / evaluation step: {summary(extra)}")
    print(verdict("entropy_over_fixed_eval_time", statistics.median(ratio), 1.02))
    print(verdict("entropy_fusion_extra_cost", 1 + statistics.median(extra), 1.02))


if __name__ == "__main__":
    main()
