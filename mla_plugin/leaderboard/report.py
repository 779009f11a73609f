"""The leaderboard's reports, built from whatever runs are in ``<out>/runs``:

- ``leaderboard.csv``: tidy, one row per run × split × modality (accuracy as a fraction);
- ``modality_gap.csv``: one row per run with a computed modality gap;
- ``leaderboard.md``: the tables in Markdown (best **bold**, second <ins>underlined</ins>,
  among the cells above chance; cells at chance marked †);
- ``index.html``: one self-contained page (inline CSS and base64 PNG plots, no external
  resources) with the paper's Table 1 layout, Table 2 (missing rates) with a line plot,
  Table 3 (ablation), a bar chart with error bars, a per-modality ("laziness") chart per
  method, the modality gap, Figure 2 (each modality's accuracy against a training-only
  mask, from ``--train-mask`` runs, which the other tables leave out) and the protocol
  beside the numbers.

This module reads the runs and their protocol and writes the files; the tables are
:mod:`~mla_plugin.leaderboard.tables`, the plots :mod:`~mla_plugin.leaderboard.plots`, the
page :mod:`~mla_plugin.leaderboard.render` (its templates in ``templates/``).
Tables show test accuracy in %, mean ± sample standard deviation (ddof 1) over seeds.
All files are written atomically.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import time

from mla_plugin.leaderboard import render, tuning
from mla_plugin.leaderboard.gap import load_run_config
from mla_plugin.leaderboard.methods import SELECTION_RULES, dataset_label
from mla_plugin.leaderboard.probes import probe_table
from mla_plugin.leaderboard.runs import load_runs
from mla_plugin.leaderboard.tables import (
    CSV_COLUMNS,
    datasets,
    figure2,
    gap_frame,
    gap_table,
    mask_text,
    paper_table1,
    roc_auc_table,
    table1,
    table2,
    table3,
    tidy,
    to_markdown,
)
from mla_plugin.utils.io import atomic_write_set

__all__ = ["CSV_COLUMNS", "build", "load_failures", "load_runs", "package_versions", "protocol"]


# ------------------------------------------------------------------ loading
def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_failures(out: str) -> list[dict]:
    """Cells whose last attempt failed and that have no metrics.json (a ``cell.json``
    without ``ok`` is a run still going or interrupted, not a failure)."""
    failed = []
    for path in sorted(glob.glob(os.path.join(out, "runs", "*", "*", "*", "*", "cell.json"))):
        cell = _read_json(path)
        run_dir = os.path.dirname(path)
        if (
            cell
            and cell.get("ok") is False
            and not os.path.isfile(os.path.join(run_dir, "metrics.json"))
        ):
            failed.append(dict(cell, run_dir=run_dir))
    return failed


def _failure(record: dict) -> str:
    """How a failed run ended: its exit status, or its SLURM job's state (e.g. CANCELLED)."""
    if record.get("slurm_state"):
        return f"SLURM job {record.get('slurm_job_id')} {record['slurm_state']}"
    return f"exit {record.get('returncode')}"


# ------------------------------------------------------------------ protocol
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
            cfg = load_run_config(ref["run_dir"])
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


# ------------------------------------------------------------------ writing
def _protocol_md(proto, versions) -> str:
    lines = ["## Protocol", ""]
    for ds, info in proto.items():
        lines += [f"**{ds}**", ""] + [f"- {k}: {v}" for k, v in info.items()] + [""]
    lines += ["**Software**: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


def build(out: str, title: str = "MLA leaderboard") -> dict:
    """Write every report into ``out``; returns the tables and paths."""
    runs = load_runs(out)
    failures = load_failures(out)
    frame = tidy(runs, out)
    gaps = gap_frame(runs, out)
    # Figure 2's training-masked runs have their own table; the others the paper's tables
    plain = [r for r in runs if not r["train_mask"]]
    t1, t3, t2s, tg, tp, f2s = (
        table1(plain),
        table3(plain),
        table2(plain),
        gap_table(plain),
        paper_table1(plain),
        figure2(runs),
    )
    checks = probe_table(plain)
    t_auc = roc_auc_table(plain)  # beside Table 1 for binary tasks (Hateful Memes)
    versions = package_versions()
    proto = protocol(runs, out) if runs else {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    tuned = tuning.load_selection(out)  # --tune's selection (tuning.json), None if untuned

    # Markdown
    md = [
        f"# {title}",
        "",
        f"{len(runs)} finished runs, generated {stamp}. Test accuracy (%), "
        "mean ± std over seeds; best **bold**, second <ins>underlined</ins> among the cells "
        "above chance (the test split's majority-class rate); † at chance.",
        "",
        tuning.header(tuned),
        "",
    ]
    for t in [t1, t_auc, checks, *t2s, t3, tg, *f2s, tp]:
        if t is not None:
            md += [to_markdown(t), ""]
    if failures:
        md += (
            ["## Failed runs", ""]
            + [f"- {f['run_dir']} ({_failure(f)}): see run.log" for f in failures]
            + [""]
        )
    if tuned is not None:
        md += [tuning.markdown(tuned), ""]
    md.append(_protocol_md(proto, versions))

    page = render.page(
        title,
        stamp,
        len(runs),
        failures,
        t1,
        t2s,
        t3,
        tg,
        tp,
        proto,
        versions,
        figure2=f2s,
        checks=checks,
    )
    page = page.replace("</h1>\n", "</h1>\n" + tuning.html(tuned), 1)

    files = {
        "leaderboard.csv": frame.to_csv(index=False),
        "modality_gap.csv": gaps.to_csv(index=False),
        "index.html": page,
        "leaderboard.md": "\n".join(md).rstrip("\n") + "\n",
    }
    if tuned is not None:
        files["tuning.csv"] = tuning.frame(tuned).to_csv(index=False)
    # replaced as one set (a new folder, one symlink swapped): never files of two builds
    paths = atomic_write_set(out, files)
    return {
        "runs": runs,
        "failures": failures,
        "table1": t1,
        "checks": checks,
        "table2": t2s,
        "table3": t3,
        "gap": tg,
        "figure2": f2s,
        "roc_auc": t_auc,
        "paths": paths,
    }
