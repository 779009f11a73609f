"""The protocol beside the numbers: per dataset, the settings the numbers depend on, read
from a run's saved config (no torch: the config as JSON or YAML), and the software
versions."""

from __future__ import annotations

import json
import os
import platform

import yaml

from mla_plugin.leaderboard.methods import SELECTION_RULES, dataset_label
from mla_plugin.leaderboard.reports.frames import datasets, mask_text


def run_config(save_dir: str) -> dict:
    """The resolved config of a run: ``run_config.json`` (the config of its checkpoint, as
    earlier leaderboards cached it and ``python -m mla_plugin.analysis.gap`` still does),
    else ``config.yaml`` (the trainer's snapshot), its keys sorted as in the JSON (the
    protocol lists e.g. an encoder's params in the order it reads them)."""
    cached = os.path.join(save_dir, "run_config.json")
    if os.path.isfile(cached):
        with open(cached) as f:
            return json.load(f)
    snapshot = os.path.join(save_dir, "config.yaml")
    if os.path.isfile(snapshot):
        with open(snapshot) as f:
            config = yaml.safe_load(f)
        if isinstance(config, dict):
            return json.loads(json.dumps(config, sort_keys=True))
    raise FileNotFoundError(f"{save_dir}: no saved config (run_config.json, config.yaml)")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "mmf", "mla-plugin", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _encoders_text(config: dict) -> str:
    model_cfg = (config.get("model_config") or {}).get(config.get("model"), {}) or {}
    encoders = model_cfg.get("encoders") or (config.get("multimodal") or {}).get("encoders") or {}
    parts = []
    for m, spec in encoders.items():
        if m == "default" or not isinstance(spec, dict):
            continue
        params = ", ".join(f"{k}={v}" for k, v in (spec.get("params") or {}).items())
        parts.append(f"{m}: {spec.get('type')}({params})")
    return "; ".join(parts) or "?"


def _data_text(data: dict | None) -> str:
    if not data:
        return "? (recorded by newer leaderboards only)"
    if data.get("dir") is None:
        return "generated (no data folder)"
    if data.get("fingerprint") is None:
        return f"{data['dir']} ({data.get('note', 'unreadable')})"
    where = "the default location" if data.get("default_location") else "given"
    return (
        f"{data['dir']} ({where}; {data.get('files', '?')} files, "
        f"{data.get('bytes', 0) / 1e6:.1f} MB, fingerprint {data['fingerprint'][:12]})"
    )


def _split_text(data: dict | None, dcfg: dict, mmf_dataset: str) -> str:
    """How val came about, as far as the run's data record and config tell."""
    source = (data or {}).get("val")
    fraction = dcfg.get("val_fraction", (data or {}).get("val_fraction"))
    train = "train.npz" if mmf_dataset == "features" else "train"
    if source == "supplied":
        val = "val supplied with the data" + (" (val.npz)" if mmf_dataset == "features" else "")
        val += ", nothing carved from train"
    elif source == "carved":
        val = f"val carved from {train} (val_fraction {fraction}; the data has no val part)"
    elif source == "generated":
        sizes = dcfg.get("sizes") or {}
        val = "val generated" + (f" ({sizes['val']} samples)" if "val" in sizes else "")
    else:
        val = "val: the data's own val part when it has one, else carved from train" + (
            f" (val_fraction {fraction})" if fraction is not None else ""
        )
    return f"train for training, {val}, for model selection; test for every number shown"


def _epochs_text(training: dict, sel: list[dict]) -> str:
    epochs = [r["selected_epoch"] for r in sel if r.get("selected_epoch") is not None]
    text = f"{training.get('max_epochs', '?')} run (training.max_epochs)"
    if epochs:
        lo, hi = min(epochs), max(epochs)
        med = sorted(epochs)[len(epochs) // 2]
        text += "; selected epoch " + (
            f"{lo}" if lo == hi else f"{lo} to {hi} over the runs (median {med})"
        )
    return text


def protocol(runs, out: str) -> dict[str, dict[str, str]]:
    """Per dataset, the settings the numbers depend on (read from a run's saved config)."""
    result = {}
    for ds in datasets(runs):
        sel = [r for r in runs if r["dataset"] == ds]
        ref = next((r for r in sel if r["variant"] == "mla"), sel[0])
        try:
            cfg = run_config(ref["run_dir"])
        except Exception as exc:  # a report without the protocol beats no report
            cfg = {}
            error = f"(config unavailable: {exc})"
        else:
            error = ""
        training, opt = cfg.get("training", {}) or {}, cfg.get("optimizer", {}) or {}
        sched = (cfg.get("scheduler", {}) or {}).get("params", {}) or {}
        selections = sorted({r["selection"] for r in sel if r["selection"]})
        seeds = sorted({r["seed"] for r in sel})
        mmf_dataset = str(cfg.get("datasets") or ref.get("mmf_dataset") or ds).split(",")[0]
        dcfg = (cfg.get("dataset_config", {}) or {}).get(mmf_dataset, {}) or {}
        overrides = sorted({o for r in sel for o in r.get("overrides") or []})
        seconds = [r["seconds"] for r in sel if r.get("seconds")]
        info = {
            "config": ref.get("config") or "?",
            "data": _data_text(ref.get("data")),
            "split": _split_text(ref.get("data"), dcfg, mmf_dataset),
            "model selection": "; ".join(SELECTION_RULES.get(s, s) for s in selections) or "?",
            "seeds": ", ".join(map(str, seeds)) + f" ({len(seeds)} per cell; mean ± sample std)",
            "epochs": _epochs_text(training, sel),
            "batch size": str(training.get("batch_size", "?")),
            "optimizer": f"{opt.get('type', '?')} "
            + ", ".join(f"{k} {v}" for k, v in (opt.get("params") or {}).items()),
            "lr schedule": f"StepLR step {sched.get('step_size', '?')} epochs, gamma {sched.get('gamma', '?')}"
            if training.get("lr_scheduler")
            else "none",
            "encoders": _encoders_text(cfg) if cfg else "?",
            "missing rates η": ", ".join(
                f"{x:g}" for x in sorted({r["missing_rate"] for r in sel})
            ),
            **(
                {
                    "training masks (Figure 2)": ", ".join(
                        sorted({mask_text(r["train_mask"]) for r in sel if r["train_mask"]})
                    )
                    + " (train split only; val and test complete)"
                }
                if any(r["train_mask"] for r in sel)
                else {}
            ),
            "leaderboard overrides": " ".join(overrides) or "none",
            "runs": f"{len(sel)} finished"
            + (f", {sum(seconds) / 60:.1f} min of run time" if seconds else ""),
        }
        if error:
            info["note"] = error
        result[dataset_label(ds)] = info
    return result


def protocol_markdown(proto, versions) -> str:
    lines = ["## Protocol", ""]
    for ds, info in proto.items():
        lines += [f"**{ds}**", ""] + [f"- {k}: {v}" for k, v in info.items()] + [""]
    lines += ["**Software**: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)
