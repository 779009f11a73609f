"""Evaluation with entropy fusion (Eq. 5-7, per sample) over fixed fusion (target <= 1.02).

Two MLA models with identical weights (same seed), differing only in
``model_config.mla.fusion`` (``entropy`` vs ``fixed``), evaluate the same batches the
way the trainer's ``predict_split`` does (eval mode, no grad, the model's forward:
both ResNet-18 encoders, the shared head per modality, then the fusion rule), plus
MMF's accuracy metric.  Shapes as bench_mla_vs_concat.py, evaluation batch 16.

Also timed inside the same run: the model's registered fusion rule alone (wrapped with a timer) as a
fraction of the evaluation step without it.

    .venv/bin/python benchmarks/bench_fusion.py [--rounds 15] [--quick]
"""

import statistics
import time

import torch
from _common import AV_ENCODERS, av_batches, av_parser, build, interleaved, ratios, summary, verdict

from mla_plugin.trainers.evaluation import accuracy


def main(argv=None):
    p = av_parser(__doc__, batch=16)
    args = p.parse_args(argv)
    batches = av_batches(args, "evaluation batch", "")
    models = {
        rule: build("mla", AV_ENCODERS, fusion=rule)[0].eval() for rule in ("entropy", "fixed")
    }
    fuse_seconds = {rule: 0.0 for rule in models}

    def timed(rule, inner):
        def run(*a, **k):
            start = time.perf_counter()
            out = inner(*a, **k)
            fuse_seconds[rule] += time.perf_counter() - start
            return out

        return run

    # the model calls its registered rule (models/fusions.py); time that rule's forward
    for rule, model in models.items():
        model.fusion_rule.forward = timed(rule, model.fusion_rule.forward)
    counter = {rule: 0 for rule in models}
    per_call = {rule: [] for rule in models}

    def evaluator(rule):
        @torch.no_grad()
        def run():
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
        for model in models.values():
            del model.fusion_rule.forward  # back to the class's forward
    for r in models:
        print(f"{r:7s} evaluation seconds per batch {summary(times[r])}")
    ratio = ratios(times, "entropy", "fixed")
    print(f"entropy/fixed per round: {summary(ratio)}")
    n = args.rounds * args.inner
    for r in models:
        print(f"fusion rule {models[r].fusion_name} seconds per batch: {summary(per_call[r][-n:])}")
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
