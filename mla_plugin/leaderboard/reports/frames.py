"""The tidy frame behind ``leaderboard.csv`` (one row per run x split x modality), which the
tables aggregate, and the helpers every table shares: the datasets and modalities of the
runs, their row labels and the base missing rate."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

CSV_COLUMNS = [
    "dataset",
    "method",
    "variant",
    "seed",
    "missing_rate",
    "split",
    "modality",
    "accuracy",
    "chance",
    "roc_auc",  # binary tasks: MMF's roc_auc (metrics.json's roc_auc); empty otherwise
    "selected_epoch",
    "selection",
    "run_dir",
    "train_mask",
]


def mask_text(train_mask) -> str:
    """A run's training mask as ``modality:ratio`` ("" for none)."""
    return f"{train_mask[0]}:{float(train_mask[1]):g}" if train_mask else ""


def tidy(runs: Sequence[dict], out: str = ".") -> pd.DataFrame:
    """One row per run × split × modality (``multi`` = the fused prediction)."""
    rows = [
        {
            "dataset": r["dataset"],
            "method": r["method"],
            "variant": r["variant"],
            "seed": r["seed"],
            "missing_rate": r["missing_rate"],
            "split": split,
            "modality": modality,
            "accuracy": acc,
            "chance": ((r.get("majority") or {}).get(split) or {}).get("rate", {}).get(modality),
            "roc_auc": ((r.get("roc_auc") or {}).get(split) or {}).get(modality),
            "selected_epoch": r["selected_epoch"],
            "selection": r["selection"],
            "run_dir": os.path.relpath(r["run_dir"], out),
            "train_mask": mask_text(r.get("train_mask")),
        }
        for r in runs
        for split in ("val", "test")
        for modality, acc in r[split].items()
    ]
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    frame["accuracy"] = pd.to_numeric(frame["accuracy"], errors="coerce")
    frame["chance"] = pd.to_numeric(frame["chance"], errors="coerce")
    frame["roc_auc"] = pd.to_numeric(frame["roc_auc"], errors="coerce")
    return frame


def _test_percent(runs) -> pd.DataFrame:
    """The tidy frame's test rows with ``value`` = accuracy in % and ``chance_value`` = the
    majority-class rate in % (NaN where the accuracy is missing, so a cell's chance averages
    the same runs as its accuracy)."""
    frame = tidy(runs)
    frame = frame[frame["split"] == "test"].copy()
    frame["value"] = 100 * frame["accuracy"]
    frame["chance_value"] = (100 * frame["chance"]).where(frame["value"].notna())
    return frame


def row_label(modality: str) -> str:
    return "Multi" if modality == "multi" else modality.replace("_", " ").capitalize()


def _modality_rows(runs: Sequence[dict], dataset: str) -> list[str]:
    mods: list[str] = []
    for r in runs:
        if r["dataset"] == dataset:
            mods += [
                m
                for m in r["modalities"] or [k for k in r["test"] if k != "multi"]
                if m not in mods
            ]
    return mods + ["multi"]


def datasets(runs) -> list[str]:
    """The runs' datasets in order of appearance."""
    return list(dict.fromkeys(r["dataset"] for r in runs))


def base_rate(runs) -> float:
    rates = sorted({r["missing_rate"] for r in runs})
    return 0.0 if 0.0 in rates else (rates[0] if rates else 0.0)
