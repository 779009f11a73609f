"""MLA's training step time over concat's (target <= 1.10).

Both models are built through the plugin's MMF classes with identical ResNet-18 audio
and video encoders (same initialisation) and trained by the trainer's own
``_train_batch`` on identical batches: audio-video shapes scaled down for a CPU (fbank
1x256x64, 2 frames of 3x64x64, batch 8; CREMA-D's are 1x1024x128, 3 frames of 3x224x224,
batch 64, see gpu.sh).  MLA runs its default configuration (per-batch sequential
schedule over both modalities, HGM ``owm`` on the 512-d head input).

    .venv/bin/python benchmarks/bench_mla_vs_concat.py [--rounds 15] [--profile] [--quick]
"""
import argparse
import statistics

import torch

from _common import (AV_ENCODERS, Loop, av_batch, build, cpu_threads, interleaved, machine,
                     ratios, summary, verdict)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--inner", type=int, default=2, help="steps per timed round")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table per method")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds (for the tests)")
    args = p.parse_args(argv)
    shapes = dict(fbank=(256, 64), frames=2, size=64)
    if args.quick:
        shapes, args.rounds, args.inner, args.batch = dict(fbank=(32, 16), frames=1, size=16), 2, 1, 2
    cpu_threads()
    print(machine())
    print(f"batch {args.batch}, audio 1x{shapes['fbank'][0]}x{shapes['fbank'][1]}, video "
          f"{shapes['frames']}x3x{shapes['size']}x{shapes['size']}, ResNet-18 encoders")
    batches = [av_batch(args.batch, seed=i, **shapes) for i in range(4)]
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
