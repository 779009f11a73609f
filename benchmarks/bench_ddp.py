"""2-process DDP (gloo, torchrun) over 1 process: training samples/s and the scaling
efficiency, on a compute-bound configuration.

The workload: MLA (default switches) with ResNet-18 audio and video encoders on
scaled-down audio-video shapes (fbank 1x256x64, 2 frames of 3x64x64), global batch 32,
stepped by the trainer's own ``_train_batch`` -- so under torchrun every step averages
the gradients over ranks (``average_gradients``, one flat gloo all-reduce) and HGM
averages h̄ over ranks before each P update, exactly as in training.  Each rank gets
its half of the same global batches.

Configurations, each a fresh process (group), alternated over ``--rounds``:

- ``1proc_1thread``: one process, one intra-op thread (the per-worker baseline);
- ``2proc_gloo``: ``torchrun --standalone --nproc_per_node 2``, one thread per rank;
- ``1proc_2threads``: one process using both cores through intra-op threads.

Scaling efficiency = samples/s(2 processes) / (2 x samples/s(1 process, 1 thread)).
The machine has 2 cores, so 2 ranks use every core (and share them with whatever else
runs: the load average is printed).

``--grad-sync`` instead compares the two ways ``training.grad_sync`` averages the
gradients, both with 2 gloo processes of one thread on the same global batches, paired
and alternated (A B, B A, ...), and reports the per-round ratio of samples/s
(``ddp / allreduce``; above 1 = DDP faster): ``allreduce`` (the trainer's flat
all-reduce after each backward) and ``ddp`` (torch's DistributedDataParallel, bucketed
all-reduces overlapping the backward, ``find_unused_parameters=True``).  The method is
``--method`` (default concat: DDP needs one step per batch, so not MLA).

    .venv/bin/python benchmarks/bench_ddp.py [--rounds 3] [--steps 6] [--quick]
    .venv/bin/python benchmarks/bench_ddp.py --grad-sync [--method concat] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(args):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    from _common import AV_ENCODERS, Loop, av_batch, build

    shapes = (
        dict(fbank=(256, 64), frames=2, size=64)
        if not args.quick
        else dict(fbank=(32, 16), frames=1, size=16)
    )
    loop = Loop(*build(args.method, AV_ENCODERS))
    if args.sync == "ddp":
        from mla_plugin.core.distributed import wrap_for_grad_sync

        loop.ddp = wrap_for_grad_sync(loop.model, "ddp")
    per_rank = args.batch // world
    batches = []
    for i in range(3):  # the same global batches in every configuration; this rank's slice
        g = av_batch(args.batch, seed=i, **shapes)
        batches.append(
            type(g)({k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in g.items()})
        )
    # time spent in the collectives: the gradient all-reduce after every backward
    # (average_gradients, called by the trainer's MixedPrecision.backward) and HGM's
    # all-reduce of the feature sum behind h̄ (all_reduce_sum)
    from mla_plugin.core import hgm, precision

    comm = [0.0]

    def timed(fn):
        def run(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            comm[0] += time.perf_counter() - t
            return out

        return run

    precision.average_gradients = timed(precision.average_gradients)
    hgm.all_reduce_sum = timed(hgm.all_reduce_sum)
    for i in range(args.warmup):
        loop.step(batches[i % len(batches)])
    if world > 1:
        dist.barrier()
    comm[0] = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(args.steps):
        loop.step(batches[i % len(batches)])
    if world > 1:
        dist.barrier()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    totals = torch.tensor([cpu, comm[0]], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(totals)
    if rank == 0:
        print(
            "RESULT-JSON "
            + json.dumps(
                {
                    "world": world,
                    "threads": args.threads,
                    "seconds": seconds,
                    "samples_per_s": args.batch * args.steps / seconds,
                    "cpu_seconds": totals[0].item(),
                    # DDP's all-reduces run inside backward: not timed separately
                    "comm_fraction": None
                    if args.sync == "ddp"
                    else totals[1].item() / world / seconds,
                    "samples_per_cpu_s": args.batch * args.steps / totals[0].item(),
                }
            ),
            flush=True,
        )
    if world > 1:
        dist.destroy_process_group()


def run(cmd, env):
    proc = subprocess.run(cmd, cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT-JSON "):
            return json.loads(line[len("RESULT-JSON ") :])
    raise SystemExit(
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=32, help="global batch")
    p.add_argument(
        "--quick", action="store_true", help="tiny shapes, 1 round of 2 steps (for the tests)"
    )
    p.add_argument(
        "--grad-sync",
        action="store_true",
        help="compare training.grad_sync=ddp with allreduce (2 processes each), paired",
    )
    p.add_argument("--method", default=None, help="default: mla (concat with --grad-sync)")
    p.add_argument("--sync", default="allreduce", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup, args.batch = 1, 2, 1, 4
    if args.method is None:
        args.method = "concat" if args.grad_sync else "mla"
    if args.worker:
        sys.path.insert(0, HERE)
        worker(args)
        return
    sys.path.insert(0, HERE)
    from _common import cpu_threads, machine, summary, verdict

    cpu_threads()
    print(machine())
    if args.grad_sync:
        grad_sync(args)
        return
    print(
        f"{args.method}, ResNet-18 audio+video encoders, global batch {args.batch}, {args.warmup} warm-up + "
        f"{args.steps} timed steps per configuration, {args.rounds} rounds"
    )
    bindir = os.path.dirname(sys.executable)
    me = [
        os.path.abspath(__file__),
        "--worker",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch={args.batch}",
        f"--method={args.method}",
    ] + (["--quick"] if args.quick else [])
    configs = {
        "1proc_1thread": [sys.executable, *me, "--threads=1"],
        "2proc_gloo": [
            os.path.join(bindir, "torchrun"),
            "--standalone",
            "--nproc_per_node",
            "2",
            *me,
            "--threads=1",
        ],
        "1proc_2threads": [sys.executable, *me, "--threads=2"],
    }
    env = dict(os.environ, OMP_NUM_THREADS="1")
    sps = {n: [] for n in configs}
    per_cpu = {n: [] for n in configs}
    for r in range(args.rounds):
        for n in list(configs) if r % 2 == 0 else list(configs)[::-1]:
            res = run(configs[n], env)
            sps[n].append(res["samples_per_s"])
            per_cpu[n].append(res["samples_per_cpu_s"])
            share = res["cpu_seconds"] / res["seconds"]
            print(
                f"round {r + 1} {n:15s} {res['samples_per_s']:.3f} samples/s; CPU used {share:.2f} cores "
                f"of 2; {res['samples_per_cpu_s']:.3f} samples per CPU-second; collectives "
                f"{100 * res['comm_fraction']:.1f} % of the time",
                flush=True,
            )
    for n in configs:
        print(f"{n:15s} samples/s {summary(sps[n])}")
    cpu_eff = [
        two / one for two, one in zip(per_cpu["2proc_gloo"], per_cpu["1proc_1thread"], strict=False)
    ]
    print(f"2 processes / 1 process, samples per CPU-second (work efficiency): {summary(cpu_eff)}")
    eff = [
        two / (2 * one) for two, one in zip(sps["2proc_gloo"], sps["1proc_1thread"], strict=False)
    ]
    speedup = [two / one for two, one in zip(sps["2proc_gloo"], sps["1proc_1thread"], strict=False)]
    vs_threads = [
        two / thr for two, thr in zip(sps["2proc_gloo"], sps["1proc_2threads"], strict=False)
    ]
    print(f"2 processes / 1 process (speed-up): {summary(speedup)}")
    print(f"2 processes / 1 process with 2 threads: {summary(vs_threads)}")
    print(verdict("ddp_2proc_scaling_efficiency", statistics.median(eff), None))


def grad_sync(args):
    """``--grad-sync``: 2-process allreduce vs ddp, paired and alternated; RESULT lines."""
    from _common import summary

    print(
        f"{args.method}, ResNet-18 audio+video encoders, global batch {args.batch}, 2 gloo "
        f"processes of 1 thread, {args.warmup} warm-up + {args.steps} timed steps per "
        f"configuration, {args.rounds} rounds (pairs, order alternated); on a shared machine "
        "read the ratios, not the absolute times"
    )
    bindir = os.path.dirname(sys.executable)
    torchrun = [os.path.join(bindir, "torchrun"), "--standalone", "--nproc_per_node", "2"]
    me = [
        os.path.abspath(__file__),
        "--worker",
        "--threads=1",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch={args.batch}",
        f"--method={args.method}",
    ] + (["--quick"] if args.quick else [])
    configs = {sync: [*torchrun, *me, f"--sync={sync}"] for sync in ("allreduce", "ddp")}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    sps = {n: [] for n in configs}
    for r in range(args.rounds):
        for n in list(configs) if r % 2 == 0 else list(configs)[::-1]:
            res = run(configs[n], env)
            sps[n].append(res["samples_per_s"])
            print(
                f"round {r + 1} {n:9s} {res['samples_per_s']:.3f} samples/s, "
                f"{res['samples_per_cpu_s']:.3f} per CPU-second; load average "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
        print(f"round {r + 1} ratio ddp/allreduce {sps['ddp'][-1] / sps['allreduce'][-1]:.4f}")
    ratio = [d / a for d, a in zip(sps["ddp"], sps["allreduce"], strict=True)]
    for n in configs:
        print(f"{n:9s} samples/s {summary(sps[n])}")
    print(f"ddp / allreduce, samples/s: {summary(ratio)}")
    print(f"RESULT grad_sync_ddp_over_allreduce_{args.method} = {statistics.median(ratio):.4f}")
    print(f"RESULT grad_sync_rounds = {args.rounds}")


if __name__ == "__main__":
    main()
