"""The names the leaderboard knows: its methods, MLA's ablation variants, the datasets'
and methods' display labels and the model-selection rules (one home for runner, report,
tables, paper and cli)."""

from __future__ import annotations

import dataclasses

from mla_plugin.models.mmf_names import MMF_MODEL_NAMES

PROBE = "probe"  # Table 1's linear-probe reference (a cell that trains nothing)
UNIMODAL = "unimodal"  # the unimodal model, one reference variant per modality
# The paper's column order (Table 1): the baselines, then MLA.
METHODS = ["sum", "concat", "mla_late_fusion", "film", "bigated", "ogm_ge", "qmf", "mla"]
OPTIONAL_METHODS = ["unimodal"]
ALL_METHODS = METHODS + OPTIONAL_METHODS
# The paper's Table 2 (missing modalities, IEMOCAP) in its row order: the two strongest
# complete-modality baselines, the missing-modality methods, then MLA.
MISSING_METHODS = ["cca", "dcca", "dccae", "ae", "cra", "mmin", "if_mmin", "cpm_net", "tate"]
TABLE2_METHODS = ["mla_late_fusion", "qmf", *MISSING_METHODS, "mla"]
# Every method a leaderboard accepts (``--methods``); ``all`` stays ALL_METHODS.
KNOWN_METHODS = ALL_METHODS + MISSING_METHODS
# Table 1's reference columns (``--references``): the linear probes and the unimodal
# model per modality (mla_plugin/analysis/probe.py, mla_plugin/leaderboard/reports/probes.py)
REFERENCES = ["probe", "unimodal"]
# Beyond these, any model in MMF's registry (MMF's own, labelled "<name> (MMF)", or a
# user plugin's) is a method too: :func:`is_known_method`.
# ``--methods <set>``: named sets of methods
METHOD_SETS = {"all": ALL_METHODS, "table1": METHODS, "table2": TABLE2_METHODS}


@dataclasses.dataclass(frozen=True)
class Variant:
    """A method with fixed config overrides; ``name`` is its directory and label."""

    method: str
    suffix: str = ""
    overrides: tuple = ()

    @property
    def name(self) -> str:
        return self.method + (f"-{self.suffix}" if self.suffix else "")


# Table 3: MLA with head gradient modification (HGM) on/off × entropy (dynamic) fusion
# on/off.  "DF off" is the plain mean of the unimodal logits.  The HGM-on, DF-on corner
# is the default ``mla`` run of Table 1.
ABLATION = {
    (False, False): Variant(
        "mla",
        "hgm_off-fusion_mean",
        (("model_config.mla.hgm", "off"), ("model_config.mla.fusion", "mean")),
    ),
    (False, True): Variant(
        "mla", "hgm_off", (("model_config.mla.hgm", "off"), ("model_config.mla.fusion", "entropy"))
    ),
    (True, False): Variant(
        "mla", "fusion_mean", (("model_config.mla.hgm", "owm"), ("model_config.mla.fusion", "mean"))
    ),
    (True, True): Variant("mla"),
}

METHOD_LABELS = {
    "sum": "Sum",
    "concat": "Concat",
    "mla_late_fusion": "Late Fusion",
    "film": "FiLM",
    "bigated": "BiGated",
    "ogm_ge": "OGM-GE",
    "qmf": "QMF",
    "mla": "MLA",
    "unimodal": "Unimodal",
    "probe": "LR probe",
    "cca": "CCA",
    "dcca": "DCCA",
    "dccae": "DCCAE",
    "ae": "AE",
    "cra": "CRA",
    "mmin": "MMIN",
    "if_mmin": "IF-MMIN",
    "cpm_net": "CPM-Net",
    "tate": "TATE",
}
ABLATION_LABELS = {
    (False, False): "HGM✗ DF✗",
    (False, True): "HGM✗ DF✓",
    (True, False): "HGM✓ DF✗",
    (True, True): "HGM✓ DF✓ (MLA)",
}
DATASET_LABELS = {
    "cremad": "CREMA-D",
    "ks": "KS",
    "food101": "Food-101",
    "mvsa": "MVSA",
    "iemocap": "IEMOCAP",
    "avdigits": "avdigits",
    "synthetic": "synthetic",
    "hateful_memes": "Hateful Memes",
}
SELECTION_RULES = {
    "val": "the epoch with the best validation Multi (fused) accuracy; test accuracy at that epoch",
    "last": "the last epoch",
    "best_on_test": "LEGACY: the epoch with the best test accuracy (the authors' code); optimistic",
}


def variant_order(variants) -> list:
    """The paper's method order (Table 1's, the Table-2 methods before MLA), then MLA's
    ablation variants, then anything else."""
    known = METHODS[:-1] + MISSING_METHODS + ["mla"] + OPTIONAL_METHODS
    known += [v.name for v in ABLATION.values()] + ["probe"]
    ordered = [v for v in dict.fromkeys(known) if v in variants]
    return ordered + sorted(v for v in variants if v not in ordered)


def registered_models() -> list[str]:
    """Every model name in MMF's registry: MMF's own models (imported with
    ``mmf.models``), the plugin's, and those of a ``user_dir`` already imported."""
    import mmf.models  # noqa: F401  (registers MMF's models)
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()
    return sorted(registry.mapping["model_name_mapping"])


def is_known_method(name: str) -> bool:
    """A leaderboard method: one of :data:`KNOWN_METHODS`, or any registered model
    (MMF's run through :class:`~mla_plugin.models.mmf_adapter.MMFModelAdapter`)."""
    return name in KNOWN_METHODS or name in registered_models()


def variant_label(variant: str) -> str:
    if variant in METHOD_LABELS:
        return METHOD_LABELS[variant]
    if variant in MMF_MODEL_NAMES:
        return f"{variant} (MMF)"  # e.g. MMF's late_fusion beside our "Late Fusion"
    for key, v in ABLATION.items():
        if v.name == variant:
            return f"MLA {ABLATION_LABELS[key]}"
    return variant


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)
