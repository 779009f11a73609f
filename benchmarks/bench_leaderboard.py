"""The main job end to end: a small tuned leaderboard the old way (one ``mmf_run`` process
per cell, no pruning: ``--no-warm-workers --prune none``) against the new way (a warm
worker per job slot, the median pruner: the defaults), alternately in one run (old new,
then new old, ...), each in a fresh output folder.

Reports per way: the wall time, the cells run, the fixed cost per cell (a cell's wall
time in ``cell.json`` less its training, from its ``train.log``: the first
``Training ...`` line to the ``test ...`` line), the pruned and diverged trials, and the
final Table 1; then the ratio of wall times (new / old, per round; target <= 0.5).

    .venv/bin/python benchmarks/bench_leaderboard.py --rounds 1
    .venv/bin/python benchmarks/bench_leaderboard.py --quick      # synthetic, tiny
"""

import argparse
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAYS = {
    "old": ["--no-warm-workers", "--prune", "none"],
    "new": ["--warm-workers", "--prune", "median"],
}
STAMP = "%Y-%m-%dT%H:%M:%S"


def _stamp(line: str) -> float | None:
    try:
        return datetime.datetime.strptime(line[:19], STAMP).timestamp()
    except ValueError:
        return None


def cell_costs(out: str) -> list[tuple[float, float]]:
    """(cell wall time, training time) of every cell run under ``out``."""
    costs = []
    pattern = os.path.join(glob.escape(out), "**", "cell.json")
    for record_path in glob.glob(pattern, recursive=True):
        record = json.load(open(record_path))
        log = os.path.join(os.path.dirname(record_path), "train.log")
        if record.get("seconds") is None or not os.path.isfile(log):
            continue
        lines = open(log).read().splitlines()
        start = next((_stamp(x) for x in lines if " : Training " in x), None)
        end = next((_stamp(x) for x in reversed(lines) if " : test " in x), None)
        if start is not None and end is not None:
            costs.append((float(record["seconds"]), end - start))
    return costs


def table1(out: str) -> str:
    text = open(os.path.join(out, "leaderboard.md")).read()
    start = text.index("### Table 1")
    return text[start : text.index("\n\n_", start)]


def trial_counts(out: str) -> dict:
    selection = json.load(open(os.path.join(out, "tuning.json")))
    studies = selection["studies"].values()
    return {k: sum(s.get(k, 0) for s in studies) for k in ("trials", "pruned", "diverged")}


def run_way(way: str, args, root: str, round_: int) -> dict:
    out = os.path.join(root, f"{way}{round_}")
    cmd = [sys.executable, "-m", "mla_plugin.leaderboard", *args.board, "--out", out]
    cmd += WAYS[way] + ["--", *args.overrides]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{way} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    costs = cell_costs(out)
    fixed = [total - train for total, train in costs]
    return {
        "wall": wall,
        "cells": len(costs),
        "fixed": statistics.mean(fixed),
        "train": statistics.mean(t for _, t in costs),
        "table": table1(out),
        "counts": trial_counts(out),
        "diverged_lines": proc.stderr.count("diverged in epoch"),
        "tracebacks": proc.stderr.count("Traceback"),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "--first-round", type=int, default=0, help="round numbers start here (odd: new first)"
    )
    p.add_argument("--dataset", default="avdigits_features")
    p.add_argument("--methods", nargs="+", default=["concat", "ogm_ge", "mla"])
    p.add_argument("--tune", type=int, default=4)
    p.add_argument("--seeds", default="1")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="synthetic, 2 trials, 3 epochs")
    args = p.parse_args(argv)
    dataset, epochs, tune, overrides = args.dataset, args.epochs, args.tune, []
    if args.quick:
        dataset, epochs, tune = "synthetic", 3, 2
        overrides = [f"dataset_config.synthetic.sizes.{s}=64" for s in ("train", "val", "test")]
    args.overrides = [f"training.max_epochs={epochs}", *overrides]
    args.board = ["--datasets", dataset, "--methods", *args.methods, "--seeds", args.seeds]
    args.board += ["--tune", str(tune), "--jobs", str(args.jobs), "--references", "none"]
    args.board += ["--gap-methods", "none", "--no-progress"]
    print(f"leaderboard: {' '.join(args.board)} -- {' '.join(args.overrides)}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    results: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="bench_leaderboard_") as root:
        for r in range(args.first_round, args.first_round + args.rounds):
            for way in ("old", "new") if r % 2 == 0 else ("new", "old"):
                res = run_way(way, args, root, r)
                results[way].append(res)
                print(
                    f"round {r} {way}: wall {res['wall']:.1f} s, {res['cells']} cells, "
                    f"per cell {res['fixed']:.2f} s fixed + {res['train']:.2f} s training; "
                    f"trials {res['counts']}; diverged lines {res['diverged_lines']}, "
                    f"tracebacks {res['tracebacks']}",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for way in ("old", "new"):
        print(f"\nfinal table, {way} way (round 0):\n{results[way][0]['table']}")
    ratios = [n["wall"] / o["wall"] for o, n in zip(results["old"], results["new"], strict=True)]
    ratio = statistics.median(ratios)
    fixed = {w: statistics.mean(x["fixed"] for x in results[w]) for w in results}
    print(f"\nRESULT fixed_cost_per_cell_old_s = {fixed['old']:.2f}")
    print(f"RESULT fixed_cost_per_cell_new_s = {fixed['new']:.2f}")
    print(
        f"RESULT leaderboard_wall_new_over_old = {ratio:.3f} ({min(ratios):.3f}-{max(ratios):.3f}; "
        f"target <= 0.5: {'met' if ratio <= 0.5 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
