"""The linear probes of Table 1's "LR probe" column: an analysis step of the MMF layer, run
in the probe cell's own process.

A *linear probe* is scikit-learn's logistic regression fit on the train split of the very
inputs the encoders see (the dataset as the trainer builds it: the same split, scaling and
missing-modality mask; a media dataset's decoded inputs, e.g. avdigits' fbank and pixels),
flattened and standardised with the train split's mean and std.  Its inverse regularisation
``C`` is chosen on the val split from :data:`C_GRID` (the first best wins); test accuracy is
reported at that C.  One probe per modality (on the samples that have it) and one on all
modalities concatenated (absent ones zero-filled, as the datasets fill them): Multi is the
concatenated probe.  The probe is deterministic, so a leaderboard fits it once per data
setting (its first seed).

``python -m mla_plugin.analysis.probe config=... env.save_dir=... [overrides]`` takes the
same arguments as ``mmf_run`` and builds the trainer the way ``mmf_run`` does; it writes a
``metrics.json`` shaped like a training run's, with ``"probe": {"C": ..., "converged": ...}``.
The reports read it through :mod:`mla_plugin.leaderboard.reports.probes`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np

METHOD = "probe"  # the method its metrics.json records (the leaderboard's PROBE)
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
MAX_ITER = 2000


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

    data = trainer.ctx.datasets[split]
    loader = trainer.ctx.loader(data, torch.utils.data.SequentialSampler(data), batch_size=512)
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
        "method": METHOD,
        "dataset": trainer.ctx.dataset_name,
        "seed": trainer.ctx.seed,
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
    """``python -m mla_plugin.analysis.probe <mmf_run options>``: load the dataset as
    ``mmf_run`` would (the experiment config, its model and every override) and write the
    probes' ``metrics.json`` into ``env.save_dir``."""
    from mla_plugin.utils.io import atomic_write_json

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m mla_plugin.analysis.probe")
    parser.add_argument("opts", nargs="*", help="mmf_run options: config=... env.save_dir=...")
    args = parser.parse_args(argv)
    trainer = _load_trainer(args.opts)
    metrics = probe_metrics(trainer)
    path = os.path.join(trainer.ctx.save_dir, "metrics.json")
    atomic_write_json(metrics, path)
    multi = metrics["test"]["multi"]
    print(f"probe test accuracy: {metrics['test']} (C {metrics['probe']['C']}); wrote {path}")
    return 0 if multi is not None else 1


def _load_trainer(opts):
    """The configured trainer after ``load()`` (datasets built and validated), built as
    ``mmf_run`` builds it (``mmf_cli.run.main``: MMF's imports, the config's user_dir, which
    registers the plugin, ``build_config`` and ``build_trainer``), without training."""
    from mmf.utils.build import build_config, build_trainer
    from mmf.utils.configuration import Configuration
    from mmf.utils.env import setup_imports

    setup_imports()
    # a probe run again into its folder (a leaderboard cell interrupted before its
    # metrics.json) continues it: the trainer refuses a fresh run into a started folder
    args = argparse.Namespace(opts=[*opts, "checkpoint.resume=True"], config_override=None)
    configuration = Configuration(args)
    configuration.args = args
    configuration.import_user_dir()
    trainer = build_trainer(build_config(configuration))
    trainer.load()
    return trainer


if __name__ == "__main__":
    sys.exit(main())
