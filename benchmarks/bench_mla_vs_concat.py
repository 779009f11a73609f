"""MLA's training step time over concat's (target <= 1.10).

Both models are built through the plugin's MMF classes with identical ResNet-18 audio
and video encoders (same initialisation) and trained by the trainer's own
``_train_batch`` on identical batches: audio-video shapes scaled down for a CPU (fbank
1x256x64, 2 frames of 3x64x64, batch 8; CREMA-D's are 1x1024x128, 3 frames of 3x224x224,
batch 64, see gpu.sh).  MLA runs its default configuration (per-batch sequential
schedule over both modalities, HGM ``owm`` on the 512-d head input).

    .venv/bin/python benchmarks/bench_mla_vs_concat.py [--rounds 15] [--profile] [--quick]
"""

import statistics

import torch
from _common import (
    AV_ENCODERS,
    Loop,
    av_batches,
    av_parser,
    build,
    interleaved,
    ratios,
    summary,
    verdict,
)


def main(argv=None):
    p = av_parser(__doc__, batch=8)
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table per method")
    args = p.parse_args(argv)
    batches = av_batches(args, "batch", "")
    loops = {name: Loop(*build(name, AV_ENCODERS)) for name in ("mla", "concat")}
    counter = {name: 0 for name in loops}

    def stepper(name):
        def run():
            loops[name].step(batches[counter[name] % len(batches)])
            counter[name] += 1

        return run

    times = interleaved({n: stepper(n) for n in loops}, args.rounds, args.inner)
    for n in loops:
        print(f"{n:7s} step seconds {summary(times[n])}")
    r = ratios(times, "mla", "concat")
    print(f"mla/concat per round: {summary(r)}")
    print(verdict("mla_over_concat_step_time", statistics.median(r), 1.10))
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for n in loops:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    stepper(n)()
            print(f"--- {n}: 3 steps, top operators by self CPU time")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
