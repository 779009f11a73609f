"""The modality gap (paper §3.3.3, after Liang et al., NeurIPS 2022, "Mind the Gap").

Each modality's encoder output h_m(x) is L2-normalised; the gap between two modalities
is the Euclidean distance between the centroids of their normalised embeddings,
``‖mean_i h_a(x_i)/‖h_a(x_i)‖ − mean_i h_b(x_i)/‖h_b(x_i)‖‖``, over the test samples
where the modality is present.  With more than two modalities every pair is reported
and ``gap`` is their mean.  0 means the two clouds share a centre; the largest value, 2,
means opposite poles of the unit sphere.

:func:`modality_gap` is the computation on arrays (numpy only);
:func:`gap_for_run` rebuilds a finished run's model through MMF from the config saved in
its checkpoint, loads ``<method>_final.pth`` (the selected model) and embeds the test
split.  An analysis step of the MMF layer, run in a cell's own process after its training:
``python -m mla_plugin.analysis.gap --save-dir DIR`` writes ``DIR/gap.json`` (the dict
:func:`gap_for_run` returns; atomically), which the reports read as the run's ``"gap"``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import numpy as np

GAP_FILE = "gap.json"


def normalised_centroid(embeddings) -> np.ndarray:
    """The mean of the L2-normalised rows of ``embeddings`` [N, d]."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected a non-empty [N, d] array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).mean(axis=0)


def modality_gap(embeddings: dict[str, np.ndarray]) -> dict:
    """``{"gap": mean over pairs, "pairs": {"a|b": distance}, "n": {m: count}}`` for
    ``{modality: [N_m, d] embeddings}`` (at least two modalities, one feature size)."""
    if len(embeddings) < 2:
        raise ValueError(f"the modality gap needs at least two modalities, got {list(embeddings)}")
    centroids = {m: normalised_centroid(e) for m, e in embeddings.items()}
    dims = {m: c.shape[0] for m, c in centroids.items()}
    if len(set(dims.values())) != 1:
        raise ValueError(f"embeddings of different sizes cannot be compared: {dims}")
    pairs = {
        f"{a}|{b}": float(np.linalg.norm(centroids[a] - centroids[b]))
        for a, b in itertools.combinations(list(embeddings), 2)
    }
    return {
        "gap": float(np.mean(list(pairs.values()))),
        "pairs": pairs,
        "n": {m: int(len(e)) for m, e in embeddings.items()},
    }


def load_run_config(save_dir: str) -> dict:
    """The resolved config a run saved in its checkpoint (``current.ckpt``, else
    ``best.ckpt``), cached as ``run_config.json`` beside it."""
    cached = os.path.join(save_dir, "run_config.json")
    if os.path.isfile(cached):
        with open(cached) as f:
            return json.load(f)
    paths = [
        p
        for p in (os.path.join(save_dir, n) for n in ("current.ckpt", "best.ckpt"))
        if os.path.isfile(p)
    ]
    if paths:
        import torch

        from mla_plugin.utils.io import atomic_write_json
    for path in paths:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except RuntimeError:  # not a zip checkpoint: no mmap
            state = torch.load(path, map_location="cpu", weights_only=False)
        config = state.get("config") if isinstance(state, dict) else None
        if config is not None:
            atomic_write_json(config, cached)
            return config
    raise FileNotFoundError(
        f"{save_dir}: no checkpoint with a saved config (current.ckpt, best.ckpt)"
    )


def gap_for_run(
    save_dir: str, split: str = "test", batch_size: int = 256, device: str | None = None
) -> dict:
    """Embed ``split`` with the run's selected model and return :func:`modality_gap`
    plus ``method``, ``dataset``, ``split`` and ``seed``."""
    import torch
    from mmf.common.batch_collator import BatchCollator
    from mmf.common.registry import registry
    from mmf.common.sample import SampleList
    from mmf.utils.build import build_model
    from omegaconf import OmegaConf, open_dict

    import mla_plugin

    mla_plugin.register()

    config = OmegaConf.create(load_run_config(save_dir))
    registry.register("config", config)
    method = config.model
    dataset = str(config.datasets).split(",")[0]
    builder_cls = registry.get_builder_class(dataset)
    if builder_cls is None:
        raise ValueError(f"no dataset builder named {dataset!r} is registered")
    dataset_config = config.dataset_config[dataset]
    builder = builder_cls()
    builder.build_dataset(dataset_config, split)
    data = builder.load_dataset(dataset_config, split)

    attributes = config.model_config[method]
    with open_dict(attributes):
        attributes.model = method
        attributes.num_train_samples = attributes.get("num_train_samples") or 1
    model = build_model(attributes)
    weights = os.path.join(save_dir, f"{method}_final.pth")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights} does not exist (did the run finish?)")
    state = torch.load(weights, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"] if "model" in state else state)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev).eval()

    loader = torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=BatchCollator(data.dataset_name, data.dataset_type),
    )
    modalities = list(model.modalities)
    feats = {m: [] for m in modalities}
    with torch.no_grad():
        for batch in loader:
            batch = (batch if isinstance(batch, SampleList) else SampleList(batch)).to(dev)
            out = model(batch)
            mask = batch.mask.bool() if batch.get("mask") is not None else None
            for i, m in enumerate(modalities):
                if m not in out["features"]:
                    continue  # e.g. unimodal: only its own modality is encoded
                f = out["features"][m].flatten(1)
                if mask is not None:
                    f = f[mask[:, i]]
                feats[m].append(f.float().cpu().numpy())
    embeddings = {m: np.concatenate(v) for m, v in feats.items() if v and sum(len(x) for x in v)}
    result = modality_gap(embeddings)
    result.update(method=method, dataset=dataset, split=split, seed=int(config.training.seed))
    return result


def main(argv=None) -> int:
    """``python -m mla_plugin.analysis.gap --save-dir DIR [DIR ...]``: ``DIR/gap.json`` for
    each finished run that lacks one (``--force``: recompute); 1 if any failed."""
    parser = argparse.ArgumentParser(
        prog="python -m mla_plugin.analysis.gap",
        description=f"Write DIR/{GAP_FILE}, the modality gap of a finished run.",
    )
    parser.add_argument(
        "--save-dir", nargs="+", required=True, metavar="DIR", help="env.save_dir of the run(s)"
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--force", action="store_true", help=f"recompute an existing {GAP_FILE}")
    args = parser.parse_args(argv)
    from mla_plugin.utils.io import atomic_write_json

    failed = 0
    for d in args.save_dir:
        out = os.path.join(d, GAP_FILE)
        if os.path.isfile(out) and not args.force:
            continue
        try:
            result = gap_for_run(d, split=args.split)
        except Exception as exc:  # one bad run must not stop the others
            failed += 1
            print(f"modality gap failed for {d}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        atomic_write_json(result, out)
        print(f"{d}: modality gap {result['gap']:.4f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
