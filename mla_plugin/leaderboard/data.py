"""The leaderboard's datasets: how an entry of ``--datasets`` is named, which data folder its
runs read, that folder's fingerprint and how its val split comes about.

An entry is an experiment config (``features``, ``projects/x.yaml``) with optional settings,
on the command line ``CONFIG:KEY=VALUE[,KEY=VALUE]`` and in the YAML settings either that
string or a mapping::

    --datasets features:data_dir=/data/mosi,name=mosi features:data_dir=/data/mosei
    datasets: [avdigits, {config: features, data_dir: /data/mosi, name: mosi,
                          overrides: [training.max_epochs=30]}]

- ``data_dir``: the data folder (becomes ``dataset_config.<key>.data_dir=<abs path>``, or
  ``fsdd_dir`` for avdigits, on this dataset's runs);
- ``name``: the dataset's name in the reports and its folder under ``<out>/runs``;
- ``overrides`` (YAML only): MMF overrides for this dataset's runs alone.

Without ``name`` a dataset is named after its data folder when one is given (``data_dir``
or a ``dataset_config.<key>.data_dir=`` override), else after its config (``avdigits``,
which the reports label with :data:`~mla_plugin.leaderboard.methods.DATASET_LABELS`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re

import yaml
from omegaconf import OmegaConf

from mla_plugin.leaderboard import experiments

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
SPEC_KEYS = ("config", "name", "data_dir", "overrides")
PACKAGE_DATASETS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "datasets")
BRIDGE_DATASETS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "mla_bridge", "configs", "datasets"
)
SAMPLE_BYTES = 8192  # the fingerprint reads this much of each file's start and end


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    config: str  # as given: a config name or a path
    name: str | None = None
    data_dir: str | None = None
    overrides: tuple = ()
    text: str = ""  # the entry as the user wrote it, for messages


def parse_spec(entry) -> DatasetSpec:
    """``features:data_dir=/x,name=y`` or ``{config: features, data_dir: /x, name: y}``."""
    if isinstance(entry, DatasetSpec):
        return entry
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - set(SPEC_KEYS))
        if unknown or "config" not in entry:
            raise ValueError(
                f"dataset entry {entry}: "
                + (f"unknown keys {unknown}; " if unknown else "no 'config'; ")
                + f"known keys: {list(SPEC_KEYS)}"
            )
        overrides = entry.get("overrides") or []
        if isinstance(overrides, str):
            overrides = overrides.split()
        spec = DatasetSpec(
            str(entry["config"]),
            None if entry.get("name") is None else str(entry["name"]),
            None if entry.get("data_dir") is None else str(entry["data_dir"]),
            tuple(str(o) for o in overrides),
            text=str(entry),
        )
    else:
        text = str(entry)
        config, _, rest = text.partition(":")
        settings = {}
        for item in [s for s in rest.split(",") if s] if rest else []:
            key, eq, value = item.partition("=")
            if not eq or key not in ("name", "data_dir"):
                raise ValueError(
                    f"dataset entry {text!r}: {item!r} is not name=... or data_dir=... "
                    "(form: CONFIG:name=NAME,data_dir=DIR)"
                )
            settings[key] = value
        spec = DatasetSpec(config, settings.get("name"), settings.get("data_dir"), text=text)
    bad = [o for o in spec.overrides if "=" not in o]
    if bad:
        raise ValueError(f"dataset entry {spec.text!r}: overrides must be KEY=VALUE, got {bad}")
    if spec.name is not None and not NAME_RE.match(spec.name):
        raise ValueError(
            f"dataset entry {spec.text!r}: name {spec.name!r} must be letters, digits and "
            ". _ + - (it names the folder of its runs)"
        )
    return spec


def _defaults_path(mmf_dataset: str) -> str:
    path = os.path.join(PACKAGE_DATASETS, f"{mmf_dataset}.yaml")
    if not os.path.isfile(path):
        path = os.path.join(BRIDGE_DATASETS, mmf_dataset, "defaults.yaml")
    return path


def dataset_defaults(mmf_dataset: str) -> dict:
    """``dataset_config.<mmf_dataset>`` of the dataset's default YAML: the package's
    (``mla_plugin/configs/datasets``), else the one the bridge supplies for an MMF builder
    (``mla_bridge/configs/datasets/<name>/defaults.yaml``, e.g. hateful_memes)."""
    config = experiments.load_or_empty(_defaults_path(mmf_dataset))
    return experiments.select(config, f"dataset_config.{mmf_dataset}", {}) or {}


def dataset_setting(config_path: str, mmf_dataset: str, key: str, overrides=()):
    """``dataset_config.<mmf_dataset>.<key>`` as a run would see it: the package's dataset
    defaults, then the experiment config (and its includes), then the last override; None
    where only the run can tell (e.g. ``${env.data_dir}/datasets``, MMF's setting)."""
    merged = OmegaConf.merge(
        experiments.load_or_empty(_defaults_path(mmf_dataset)),
        experiments.load_or_empty(config_path),
    )
    value = experiments.select(merged, f"dataset_config.{mmf_dataset}.{key}")
    prefix = f"dataset_config.{mmf_dataset}.{key}="
    for o in overrides:
        if o.startswith(prefix):
            value = yaml.safe_load(o[len(prefix) :])
    if isinstance(value, str) and "${" in value:
        return None  # an interpolation in an override: not known here
    return None if value in ("", "null", "None") else value


def data_dir_key(mmf_dataset: str) -> str | None:
    """The config key that points at the dataset's files (None: generated data)."""
    defaults = dataset_defaults(mmf_dataset)
    return next((k for k in ("data_dir", "fsdd_dir") if k in defaults), None)


def default_data_dir(mmf_dataset: str, key: str) -> str | None:
    """Where the builder looks when the config leaves the data folder unset."""
    from mla_plugin.data.paths import default_data_path

    if mmf_dataset == "features" or not os.path.isfile(
        os.path.join(PACKAGE_DATASETS, f"{mmf_dataset}.yaml")
    ):
        return None  # required, or under MMF's env.data_dir: the run reports its absence
    if key == "fsdd_dir":
        return str(default_data_path("MLA_FSDD_DIR", "shared", "data", "fsdd"))
    return str(default_data_path(f"MLA_{mmf_dataset.upper()}_DIR", "shared", "data", mmf_dataset))


def fingerprint(path: str | None) -> dict:
    """``{"dir", "files", "bytes", "fingerprint"}`` of a data folder: a SHA-256 over every
    file's relative path, size and first and last :data:`SAMPLE_BYTES` bytes (hidden files
    and folders skipped).  Cheap (two small reads per file), independent of mtimes (a copied
    folder keeps its fingerprint) and it changes when a file is added, removed, renamed,
    resized or rewritten (an ``.npz``'s end holds its arrays' CRCs)."""
    if path is None:
        return {"dir": None, "fingerprint": None}
    path = os.path.abspath(os.path.expandvars(os.path.expanduser(path)))
    if not os.path.exists(path):
        return {"dir": path, "fingerprint": None, "files": 0, "note": "does not exist"}
    digest, files, total = hashlib.sha256(), 0, 0
    entries = []
    if os.path.isfile(path):
        entries = [(os.path.basename(path), path)]
    else:
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for n in sorted(names):
                if not n.startswith("."):
                    full = os.path.join(root, n)
                    entries.append((os.path.relpath(full, path), full))
    for rel, full in entries:
        try:
            size = os.path.getsize(full)
            with open(full, "rb") as f:
                head = f.read(SAMPLE_BYTES)
                if size > 2 * SAMPLE_BYTES:
                    f.seek(-SAMPLE_BYTES, os.SEEK_END)
                tail = f.read(SAMPLE_BYTES)
        except OSError as exc:
            raise OSError(f"cannot read {full} to fingerprint data folder {path}: {exc}") from exc
        digest.update(f"{rel}\0{size}\0".encode())
        digest.update(hashlib.sha256(head + b"\0" + tail).digest())
        files, total = files + 1, total + size
    return {"dir": path, "fingerprint": digest.hexdigest(), "files": files, "bytes": total}


def val_source(mmf_dataset: str, data_dir: str | None) -> str | None:
    """``supplied`` (the data has its own val part), ``carved`` (val cut from train,
    ``val_fraction``), ``generated`` (synthetic), or None where only the run can tell."""
    if mmf_dataset == "synthetic":
        return "generated"
    if mmf_dataset == "avdigits":  # FSDD has no val part: val is carved from the train takes
        return "carved"
    if mmf_dataset == "features" and data_dir and os.path.isdir(data_dir):
        return "supplied" if os.path.isfile(os.path.join(data_dir, "val.npz")) else "carved"
    return None


def describe(spec: DatasetSpec, stem: str, mmf_dataset: str, config: str, overrides, root="."):
    """``(name, dataset overrides, data record)`` of one entry of ``--datasets``.

    The data record (stored in every cell.json and part of the cell's identity) is the
    data folder's :func:`fingerprint`, whether it was given or is the default location,
    and :func:`val_source` with the ``val_fraction`` a carve would use."""
    key = data_dir_key(mmf_dataset)
    ds_overrides = list(spec.overrides)
    if spec.data_dir is not None:
        if key is None:
            raise ValueError(
                f"dataset entry {spec.text!r}: {mmf_dataset} has no data folder (data_dir)"
            )
        ds_overrides.insert(
            0, f"dataset_config.{mmf_dataset}.{key}={os.path.abspath(spec.data_dir)}"
        )
    every = [re.sub(r"(?<!\$)\{dataset\}", mmf_dataset, o) for o in [*overrides, *ds_overrides]]
    given = (
        any(o.startswith(f"dataset_config.{mmf_dataset}.{key}=") for o in every) if key else False
    )
    folder = None
    if key is not None:
        configured = dataset_setting(experiments.full_path(config, root), mmf_dataset, key, every)
        folder = str(configured) if configured is not None else default_data_dir(mmf_dataset, key)
    record = fingerprint(folder)
    record["default_location"] = not given
    source = val_source(mmf_dataset, record["dir"])
    if source:
        record["val"] = source
    vf = dataset_setting(experiments.full_path(config, root), mmf_dataset, "val_fraction", every)
    if vf is not None:
        record["val_fraction"] = vf
    if spec.name is not None:
        name = spec.name
    elif given and record["dir"]:
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", os.path.basename(record["dir"].rstrip(os.sep)))
        name = name.lstrip("._+-") or stem
    else:
        name = stem
    return name, tuple(ds_overrides), record
