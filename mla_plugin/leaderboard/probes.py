"""Reference rows of Table 1: linear probes, and what they say about the methods.

A *linear probe* is scikit-learn's logistic regression fit on the train split of the very
inputs the encoders see (the dataset as the trainer builds it: the same split, scaling and
missing-modality mask; a media dataset's decoded inputs, e.g. avdigits' fbank and pixels),
flattened and standardised with the train split's mean and std.  Its inverse regularisation
``C`` is chosen on the val split from :data:`C_GRID` (the first best wins); test accuracy is
reported at that C.  One probe per modality (on the samples that have it) and one on all
modalities concatenated (absent ones zero-filled, as the datasets fill them): the Table-1
column "LR probe", Multi being the concatenated probe.  The probe is deterministic, so a
leaderboard fits it once per data setting (its first seed).

Run as a leaderboard cell (``python -m mla_plugin.leaderboard.probes config=... env.save_dir=...
[overrides]``, the same arguments as the cell's ``mmf_run``); it writes a ``metrics.json``
shaped like a training run's, with ``"probe": {"C": ..., "converged": ...}``.

:func:`flags` reads the finished runs: a method whose fused test accuracy is within
:data:`CHANCE_POINTS` of the majority-class rate, or more than :data:`PROBE_POINTS` under
the concatenated probe, is flagged in the report -- such a number says more about the
method's settings than about the method.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from mla_plugin.leaderboard.methods import reference_modality

PROBE = "probe"
UNIMODAL = "unimodal"
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
MAX_ITER = 2000
CHANCE_POINTS = 2.0
PROBE_POINTS = 10.0


# ------------------------------------------------------------------ fitting
def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(0)
    std = train.std(0)
    std[std < 1e-12] = 1.0  # a constant feature stays 0
    return [(a - mean) / std for a in (train, *others)]


def fit_probe(xs: dict[str, np.ndarray], ys: dict[str, np.ndarray], grid=C_GRID) -> dict:
    """Logistic regression on ``xs[split]`` ``[N, d]``, C chosen on val: ``{"C", "val",
    "test", "converged"}`` (accuracies in [0, 1]; None for a split without samples)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    train, val, test = _standardise(xs["train"], xs["val"], xs["test"])
    if len(np.unique(ys["train"])) < 2:
        raise ValueError("the probe's train split holds a single class")
    best = None
    for c in grid:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(train, ys["train"])
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        score = model.score(val, ys["val"]) if len(val) else -math.inf
        if best is None or score > best[0]:
            best = (score, c, model, converged)
    score, c, model, converged = best
    return {
        "C": c,
        "val": float(score) if len(val) else None,
        "test": float(model.score(test, ys["test"])) if len(test) else None,
        "converged": converged,
    }


def split_arrays(trainer, split: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A loaded trainer's split as ``({modality: [N, d] float64}, targets [N], mask [N, M])``,
    in index order, through the trainer's own loader (what the encoders are fed)."""
    import torch

    data = trainer.datasets[split]
    loader = trainer._loader(data, torch.utils.data.SequentialSampler(data), batch_size=512)
    parts = {m: [] for m in trainer.modalities}
    targets, masks = [], []
    for batch in loader:
        for m in trainer.modalities:
            x = batch[m]
            parts[m].append(x.reshape(x.shape[0], -1).double().numpy())
        targets.append(batch.targets.numpy())
        masks.append(batch.mask.bool().numpy())
    return (
        {m: np.concatenate(v) for m, v in parts.items()},
        np.concatenate(targets),
        np.concatenate(masks),
    )


def probe_metrics(trainer) -> dict:
    """Per-modality and concatenated probes on a loaded trainer's data, as ``metrics.json``."""
    from mla_plugin.trainers.evaluation import majority

    splits = ("train", "val", "test")
    arrays = {s: split_arrays(trainer, s) for s in splits}
    modalities = list(trainer.modalities)
    results, cs, converged, dims = {"val": {}, "test": {}}, {}, {}, {}
    for i, m in enumerate(modalities):
        rows = {s: arrays[s][2][:, i] for s in splits}
        xs = {s: arrays[s][0][m][rows[s]] for s in splits}
        ys = {s: arrays[s][1][rows[s]] for s in splits}
        fit = fit_probe(xs, ys)
        results["val"][m], results["test"][m] = fit["val"], fit["test"]
        cs[m], converged[m], dims[m] = fit["C"], fit["converged"], int(xs["train"].shape[1])
    xs = {s: np.concatenate([arrays[s][0][m] for m in modalities], 1) for s in splits}
    fit = fit_probe(xs, {s: arrays[s][1] for s in splits})
    results["val"]["multi"], results["test"]["multi"] = fit["val"], fit["test"]
    cs["multi"], converged["multi"] = fit["C"], fit["converged"]
    import torch

    chance = {
        s: majority(torch.from_numpy(arrays[s][1]), torch.from_numpy(arrays[s][2]), modalities)
        for s in ("val", "test")
    }
    return {
        "method": PROBE,
        "dataset": trainer.dataset_name,
        "seed": trainer.seed,
        "selection": "val",
        "selected_update": None,
        "selected_epoch": None,
        "modalities": modalities,
        "world_size": 1,
        "val": results["val"],
        "test": results["test"],
        "majority": chance,
        "probe": {
            "C": cs,
            "C_grid": list(C_GRID),
            "converged": converged,
            "input_dims": dims,
            "samples": {s: int(len(arrays[s][1])) for s in splits},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mla_plugin.leaderboard.probes <mmf_run options>``: load the dataset as
    ``mmf_run`` would (the experiment config, its model and every override) and write the
    probes' ``metrics.json`` into ``env.save_dir``."""
    from mla_plugin.utils.io import atomic_write_json

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m mla_plugin.leaderboard.probes")
    parser.add_argument("opts", nargs="*", help="mmf_run options: config=... env.save_dir=...")
    args = parser.parse_args(argv)
    trainer = _load_trainer(args.opts)
    metrics = probe_metrics(trainer)
    path = os.path.join(trainer.save_dir, "metrics.json")
    atomic_write_json(metrics, path)
    multi = metrics["test"]["multi"]
    print(f"probe test accuracy: {metrics['test']} (C {metrics['probe']['C']}); wrote {path}")
    return 0 if multi is not None else 1


def _load_trainer(opts):
    """The configured trainer after ``load()`` (datasets built and validated), as
    ``mmf_run`` builds it."""
    from mmf.utils.build import build_config, build_trainer
    from mmf.utils.configuration import Configuration

    import mla_plugin  # noqa: F401  (registers the plugin)

    args = argparse.Namespace(opts=list(opts), config_override=None)
    configuration = Configuration(args)
    configuration.args = args
    trainer = build_trainer(build_config(configuration))
    trainer.load()
    return trainer


# ------------------------------------------------------------------ reading runs
def unimodal_reference(runs: Sequence[dict]) -> list[dict]:
    """The per-modality ``unimodal-<modality>`` runs as one ``unimodal`` column: each run
    keeps only its own modality's accuracy (its Multi equals it, and is left out)."""
    out = []
    for r in runs:
        own = reference_modality(r["variant"])
        if r["method"] != UNIMODAL or own is None:
            out.append(r)
            continue
        keep = dict(r, variant=UNIMODAL)
        for split in ("val", "test"):
            keep[split] = {k: v for k, v in (r.get(split) or {}).items() if k == own}
        out.append(keep)
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) * 100 if values else None


def probe_gaps(runs: Sequence[dict]) -> list[dict]:
    """Per dataset and method (plain variants, not the references): the fused test
    accuracy, the majority-class rate and the concatenated probe (all %, means over
    seeds), the distance to the probe, and the report's flags."""
    out = []
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    for ds in datasets:
        mine = [r for r in runs if r["dataset"] == ds]
        probe = _mean([r["test"].get("multi") for r in mine if r["method"] == PROBE])
        methods = list(
            dict.fromkeys(
                r["method"]
                for r in mine
                if r["variant"] == r["method"] and r["method"] not in (PROBE, UNIMODAL)
            )
        )
        for method in methods:
            rs = [r for r in mine if r["method"] == method and r["variant"] == method]
            fused = _mean([r["test"].get("multi") for r in rs])
            chance = _mean(
                [
                    ((r.get("majority") or {}).get("test") or {}).get("rate", {}).get("multi")
                    for r in rs
                ]
            )
            flags = []
            if fused is not None and chance is not None and fused - chance <= CHANCE_POINTS:
                flags.append(f"within {CHANCE_POINTS:g} points of the majority class")
            if fused is not None and probe is not None and probe - fused > PROBE_POINTS:
                flags.append(f"more than {PROBE_POINTS:g} points under the concatenated probe")
            out.append(
                {
                    "dataset": ds,
                    "method": method,
                    "fused": fused,
                    "chance": chance,
                    "probe": probe,
                    "minus_probe": None if fused is None or probe is None else fused - probe,
                    "flags": flags,
                }
            )
    return out


def flags(runs: Sequence[dict]) -> list[str]:
    """The report's flag lines, e.g. ``features: FiLM 13.2 % is within 2 points of the
    majority class (12.0 %)``."""
    from mla_plugin.leaderboard.methods import METHOD_LABELS, dataset_label

    lines = []
    for g in probe_gaps(runs):
        for flag in g["flags"]:
            ref = (
                f"majority class {g['chance']:.2f} %"
                if "majority" in flag
                else f"probe {g['probe']:.2f} %"
            )
            lines.append(
                f"{dataset_label(g['dataset'])}: {METHOD_LABELS.get(g['method'], g['method'])} "
                f"fused {g['fused']:.2f} % is {flag} ({ref})"
            )
    return lines


if __name__ == "__main__":
    sys.exit(main())


def probe_table(runs: Sequence[dict]):
    """Table: per dataset (rows) and method (columns), the fused test accuracy minus the
    concatenated probe's, in points; the flags as its note.  None without probe runs."""
    import pandas as pd

    from mla_plugin.leaderboard.methods import METHOD_LABELS, dataset_label, variant_order
    from mla_plugin.leaderboard.tables import Table

    gaps = [g for g in probe_gaps(runs) if g["probe"] is not None]
    if not gaps:
        return None
    datasets = list(dict.fromkeys(g["dataset"] for g in gaps))
    methods = variant_order({g["method"] for g in gaps})
    means = pd.DataFrame(
        math.nan,
        index=pd.Index([dataset_label(d) for d in datasets], name="Data"),
        columns=[METHOD_LABELS.get(m, m) for m in methods],
    )
    for g in gaps:
        if g["minus_probe"] is not None:
            means.iat[datasets.index(g["dataset"]), methods.index(g["method"])] = g["minus_probe"]
    lines = flags(runs)
    note = (
        f"fused test accuracy minus the logistic-regression probe on all modalities "
        f"(points). Flagged: a method within {CHANCE_POINTS:g} points of the majority class "
        f"or more than {PROBE_POINTS:g} points under the probe"
        + (": " + "; ".join(lines) if lines else ": none")
    )
    nan = pd.DataFrame(math.nan, index=means.index, columns=means.columns)
    return Table(
        "Reference check: fused accuracy against the concatenated linear probe",
        means,
        nan,
        nan.fillna(1).astype(int),
        mark_axis=None,
        note=note,
    )
