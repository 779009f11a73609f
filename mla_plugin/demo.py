"""``make demo``: train MLA and the baselines with MMF's own ``mmf_run`` on the
synthetic dataset (one dominant, one weak modality) and print each run's fused and
per-modality test accuracy.

    python -m mla_plugin.demo [--methods mla concat late_fusion] [--out runs/demo]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import pandas as pd

CONFIG = "projects/mla/configs/synthetic.yaml"


def run(method: str, out: str, extra=()) -> dict:
    save_dir = os.path.join(out, method)
    cmd = [os.path.join(os.path.dirname(sys.executable), "mmf_run"), f"config={CONFIG}",
           f"model={method}", f"env.save_dir={save_dir}", *extra]
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed")
    with open(os.path.join(save_dir, "metrics.json")) as f:
        metrics = json.load(f)
    row = {"method": method, **{k: round(v, 4) for k, v in metrics["test"].items()},
           "selected_epoch": metrics["selected_epoch"], "seconds": round(time.time() - start, 1)}
    print(f"{method:12s} " + "  ".join(f"{k} {v}" for k, v in row.items() if k != "method"), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["mla", "concat", "late_fusion"])
    parser.add_argument("--out", default="runs/demo")
    args = parser.parse_args(argv)
    print(f"Training on synthetic data ({CONFIG}); test accuracy, model selected on validation:")
    table = pd.DataFrame([run(m, args.out) for m in args.methods]).set_index("method")
    print()
    print(table.to_markdown())


if __name__ == "__main__":
    main()
