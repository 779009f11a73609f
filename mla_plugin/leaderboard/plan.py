"""The leaderboard's plan: the grid of cells, datasets × method variants × data settings
(missing rate η, training mask) × seeds, from the experiment configs (read by
:mod:`~mla_plugin.leaderboard.experiments`), without torch or MMF.  Also the checks made
before anything runs: the methods, the missing rates, the training masks' modalities and
the run folders' identities (:func:`check_identities`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from mla_plugin.leaderboard import experiments
from mla_plugin.leaderboard.cells import REPO_ROOT, Cell, column_folder, setting_name
from mla_plugin.leaderboard.data import dataset_setting, describe, parse_spec
from mla_plugin.leaderboard.experiments import full_path
from mla_plugin.leaderboard.methods import (
    ABLATION,
    KNOWN_METHODS,
    PROBE,
    REFERENCES,
    TEST_SELECTIONS,
    UNIMODAL,
    Variant,
    is_known_method,
    mmf_models,
    plugin_models,
    unimodal_variant,
)


def parse_seeds(values: Sequence) -> list[int]:
    """``[3]`` -> seeds 1..3; ``[1, 5, 9]`` (or ``["1,5,9"]``) -> those seeds."""
    items = []
    for v in values:
        items += [s for s in str(v).replace(",", " ").split() if s]
    bad = [s for s in items if not re.fullmatch(r"[0-9]+", s)]
    if bad or not items:
        raise ValueError(
            f"--seeds: expected a count N (seeds 1..N) or a list of seeds, each an integer "
            f">= 0, got {' '.join(map(str, values)) or 'nothing'}"
        )
    seeds = [int(s) for s in items]
    if len(seeds) == 1:
        if seeds[0] < 1:
            raise ValueError(f"--seeds: a count must be >= 1, got {seeds[0]}")
        return list(range(1, seeds[0] + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: repeated seeds in {seeds}")
    return seeds


def parse_train_mask(value: str) -> tuple[str, float]:
    """``--train-mask`` value ``MODALITY:RATIO`` -> ``(modality, ratio)``, ratio in [0, 1]."""
    name, sep, ratio = str(value).partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"--train-mask {value!r}: expected MODALITY:RATIO, e.g. audio:0.5 "
            "(a modality name, a colon, a ratio in [0, 1])"
        )
    try:
        r = float(ratio)
    except ValueError:
        raise ValueError(f"--train-mask {value!r}: the ratio {ratio!r} is not a number") from None
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"--train-mask {value!r}: the ratio {r:g} is not in [0, 1]")
    return name, r


def resolve_config(dataset: str, root: str = REPO_ROOT) -> tuple:
    """``avdigits`` -> ``(avdigits, <MMF dataset key>, projects/mla/configs/avdigits.yaml)``;
    a path to a YAML file is used as it is.  The configs are the repository's, wherever the
    leaderboard runs from."""
    path = experiments.experiment_path(dataset, root)
    config = experiments.load(full_path(path, root))
    name = os.path.splitext(os.path.basename(path))[0]
    mmf_dataset = str(experiments.select(config, "datasets") or name).split(",")[0].strip()
    return name, mmf_dataset, path


def plan(
    datasets: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    missing_rates: Sequence[float],
    out: str,
    ablation: bool = False,
    overrides: Sequence[str] = (),
    root: str = REPO_ROOT,
    train_masks: Sequence[tuple] = (),
    references: Sequence[str] = (),
    gap_methods: Sequence[str] = (),
    selections: Sequence[str] = (),
) -> list[Cell]:
    """Every cell, in a stable order, without duplicates (the ablation's HGM-on DF-on
    corner is the ``mla`` cell).  ``train_masks`` (``(modality, ratio)`` pairs, Figure 2):
    given, every cell has one of them (a dimension next to η); a modality the experiment
    config does not list under ``multimodal.modalities`` is refused.  ``references``:
    Table 1's reference columns, ``probe`` (:mod:`~mla_plugin.analysis.probe`: one
    cell per data setting, at the first seed) and ``unimodal`` (one ``unimodal-<modality>``
    variant per modality of the dataset, every seed).  The cells of ``gap_methods`` compute
    the modality gap after their run.  ``selections`` (``--selections``: val, test_max):
    given, every trained method runs under each (``protocol.selection``; a test
    selection's runs in ``<variant>@test_max``), the references under the first fair one."""
    unknown = [m for m in methods if not is_known_method(m)]
    if unknown:
        raise ValueError(
            f"unknown methods {unknown}; known: {KNOWN_METHODS}, the plugin's models "
            f"{[m for m in plugin_models() if m not in KNOWN_METHODS]} or MMF's "
            f"{list(mmf_models())} (mla_plugin/configs/mmf_models.yaml)"
        )
    bad = [r for r in references if r not in REFERENCES]
    if bad:
        raise ValueError(f"unknown references {bad}; known: {REFERENCES}")
    masks = [None] if not train_masks else list(dict.fromkeys(tuple(t) for t in train_masks))
    for r in missing_rates:
        if not 0.0 <= float(r) < 1.0:
            raise ValueError(f"missing rate {r} is not in [0, 1)")
    variants = [Variant(m) for m in methods]
    if ablation:
        variants += [v for v in ABLATION.values() if v not in variants]
    cells, seen, names = [], set(), {}
    for entry in datasets:
        spec = parse_spec(entry)
        stem, mmf_dataset, config = resolve_config(spec.config, root)
        name, ds_overrides, data = describe(spec, stem, mmf_dataset, config, overrides, root)
        if name in names and names[name][:3] != (config, data.get("dir"), ds_overrides):
            raise ValueError(
                f"datasets {names[name][3]!r} and {spec.text!r} would both be named {name!r} "
                f"(data folders {names[name][1]} and {data.get('dir')}); give one a name, "
                f"e.g. {spec.config}:name=OTHER"
            )
        names[name] = (config, data.get("dir"), ds_overrides, spec.text)
        check_mask_modalities(masks, config, root)
        extra = []
        if UNIMODAL in references:
            extra += [
                unimodal_variant(m)
                for m in dataset_modalities(config, mmf_dataset, data, ds_overrides, root)
            ]
        if PROBE in references:
            extra.append(Variant(PROBE))
        for rate in missing_rates:
            for mask in masks:
                for variant, selection, seed in _runs(variants, extra, selections, seeds):
                    save_dir = os.path.join(
                        out,
                        "runs",
                        name,
                        column_folder(variant.folder, selection),
                        setting_name(rate, mask),
                        f"seed{seed}",
                    )
                    cell = Cell(
                        name,
                        mmf_dataset,
                        config,
                        variant,
                        int(seed),
                        float(rate),
                        save_dir,
                        tuple(overrides) + ds_overrides,
                        data,
                        mask,
                        tuple(gap_methods),
                        selection=selection,
                    )
                    if cell.key not in seen:
                        seen.add(cell.key)
                        cells.append(cell)
    return cells


def _runs(variants, references, selections, seeds):
    """``(variant, selection, seed)`` of one data setting: each method under each of
    ``selections`` (None: the config's own), the references (not ranked) under the first
    selection that does not read test; the probe (no epochs to select) once."""
    selections = list(selections) or [None]
    fair = next((s for s in selections if s not in TEST_SELECTIONS), selections[0])
    for variant in variants + [v for v in references if v not in variants]:
        if variant.method == PROBE:
            yield variant, None, seeds[0]
            continue
        for selection in selections if variant in variants else [fair]:
            for seed in seeds:
                yield variant, selection, seed


def _listed_modalities(config: str, root: str = REPO_ROOT) -> list | None:
    """The experiment config's ``multimodal.modalities`` (interpolations resolved) when it
    lists them, else None."""
    listed = experiments.select(experiments.load(full_path(config, root)), "multimodal.modalities")
    return listed if isinstance(listed, list) else None


def dataset_modalities(config: str, mmf_dataset: str, data, overrides=(), root=REPO_ROOT) -> list:
    """The modalities a run of ``config`` trains on: its ``multimodal.modalities``, else
    the dataset's ``modalities`` setting, else (``features``) the ``x_<modality>`` keys of
    the data folder's ``train.npz``, in file order."""
    listed = _listed_modalities(config, root)
    if listed:
        return [str(m) for m in listed]
    setting = dataset_setting(full_path(config, root), mmf_dataset, "modalities", overrides)
    if isinstance(setting, str):
        setting = [m.strip() for m in setting.split(",") if m.strip()]
    if setting:
        return [str(m) for m in setting]
    folder = (data or {}).get("dir")
    train = os.path.join(folder, "train.npz") if folder else None
    if train and os.path.isfile(train):
        import zipfile

        with zipfile.ZipFile(train) as z:
            keys = [os.path.splitext(n)[0] for n in z.namelist()]
        return [k[2:] for k in keys if k.startswith("x_")]
    raise ValueError(
        f"references: cannot tell the modalities of {config} (no multimodal.modalities, no "
        f"dataset_config.{mmf_dataset}.modalities, no train.npz in its data folder {folder}); "
        "set one of them, or leave out the unimodal reference (--references probe)"
    )


def check_mask_modalities(masks, config: str, root: str = REPO_ROOT) -> None:
    """A ``--train-mask`` modality the experiment config's ``multimodal.modalities`` does not
    list is an error (when the config lists them; else ``mmf_run`` checks against the data)."""
    listed = _listed_modalities(config, root)
    if listed is None:
        return
    bad = sorted({m[0] for m in masks if m and m[0] not in listed})
    if bad:
        raise ValueError(
            f"--train-mask: modality {', '.join(bad)} is not one of {config}'s modalities "
            f"({', '.join(map(str, listed))})"
        )


def check_identities(cells: Sequence[Cell], limit: int = 5):
    """Refuse (ValueError) when a cell's folder holds a run of another identity: its
    results would be reported as this leaderboard's (e.g. another data folder's)."""
    conflicts = [c for c in (cell.conflict() for cell in cells) if c]
    if conflicts:
        raise ValueError(
            f"{len(conflicts)} run folder(s) hold runs of other settings or data, which would be "
            "reported as this leaderboard's; use another --out, give the dataset another name "
            "(--datasets CONFIG:name=NAME) or remove those folders:\n  "
            + "\n  ".join(conflicts[:limit])
            + (f"\n  ... and {len(conflicts) - limit} more" if len(conflicts) > limit else "")
        )
