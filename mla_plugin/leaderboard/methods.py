"""The names the leaderboard knows: its methods, MLA's ablation variants, the datasets'
and methods' display labels and the model-selection rules (one home for runner, report,
tables, paper and cli)."""

from __future__ import annotations

import dataclasses
import functools
import os

import yaml

from mla_plugin.utils.variants import switches, variant_name

PROBE = "probe"  # Table 1's linear-probe reference (a cell that trains nothing)
UNIMODAL = "unimodal"  # the unimodal model, one reference variant per modality
# MMF's own models that the leaderboard accepts as methods (planning reads this list, not
# MMF's registry, so it imports neither torch nor MMF)
PLUGIN_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
MMF_MODELS_FILE = os.path.join(PLUGIN_CONFIGS, "mmf_models.yaml")
PLUGIN_MODELS_DIR = os.path.join(PLUGIN_CONFIGS, "models")

# The paper's column order (Table 1): the baselines, then MLA.
METHODS = ["sum", "concat", "mla_late_fusion", "film", "bigated", "ogm_ge", "qmf", "mla"]
OPTIONAL_METHODS = ["unimodal"]
ALL_METHODS = METHODS + OPTIONAL_METHODS
# The paper's Table 2 (missing modalities, IEMOCAP) in its row order: the two strongest
# complete-modality baselines, the missing-modality methods, then MLA.
MISSING_METHODS = ["cca", "dcca", "dccae", "ae", "cra", "mmin", "if_mmin", "cpm_net", "tate"]
TABLE2_METHODS = ["mla_late_fusion", "qmf", *MISSING_METHODS, "mla"]
# Every method a leaderboard accepts (``--methods``); the set ``all`` is every registered
# one (:data:`METHOD_SETS`).
KNOWN_METHODS = ALL_METHODS + MISSING_METHODS
# Table 1's reference columns (``--references``): the linear probes and the unimodal
# model per modality (mla_plugin/analysis/probe.py, mla_plugin/leaderboard/reports/probes.py)
REFERENCES = ["probe", "unimodal"]
# Beyond these, MMF's own models listed in mmf_models.yaml (labelled "<name> (MMF)") and
# any plugin model with a YAML in mla_plugin/configs/models are methods too:
# :func:`is_known_method`.
# The field's balanced-learning methods (docs/baselines.md "The field's methods"): the
# modulation family (a step's gradients, predictions or loss) and the staged family (the
# course of training).  A set holds those registered so far (a YAML in configs/models).
MODULATION_METHODS = [
    "ogm", "opm", "greedy", "pmr", "agm", "mmcosine", "umt", "ume", "cml", "mbsd",
    "mmpareto", "lfm", "inforeg",
]  # fmt: skip
STAGED_METHODS = ["gblending", "reconboost", "relearning", "aug", "modality_valuation", "amco"]
# BalanceBenchmark's (GeWu-Lab, 2025) methods: all but InfoReg and AUG, plus OGM-GE and MLA
NOT_IN_BALANCEBENCHMARK = {"inforeg", "aug"}
BALANCE_METHODS = [
    "ogm_ge",
    *(m for m in MODULATION_METHODS + STAGED_METHODS if m not in NOT_IN_BALANCEBENCHMARK),
    "mla",
]


def registered(methods) -> list[str]:
    """The members of a method set that are registered (have a model YAML)."""
    return [m for m in methods if m in plugin_models()]


@dataclasses.dataclass(frozen=True)
class Variant:
    """A method with fixed config overrides (``(("model_config.mla.hgm", "off"),)``);
    ``name`` is its folder and record name: :func:`~mla_plugin.utils.variants.variant_name`
    of the overrides that differ from the model YAML's defaults, e.g. ``mla[hgm=off]``, the
    name the trainer writes into ``metrics.json``."""

    method: str
    overrides: tuple = ()

    @property
    def name(self) -> str:
        prefix = f"model_config.{self.method}."
        section = {k[len(prefix) :]: v for k, v in self.overrides if k.startswith(prefix)}
        return variant_name(self.method, switches(self.method, section))

    @property
    def folder(self) -> str:
        """The folder of its runs: :attr:`name` with ``=`` written ``-`` (``mla[hgm-off]``):
        rc10's ``mmf_run`` splits an override at every ``=``, so ``env.save_dir`` cannot
        hold one."""
        return self.name.replace("=", "-")


# Table 3: MLA with head gradient modification (HGM) on/off × entropy (dynamic) fusion
# on/off.  "DF off" is the plain mean of the unimodal logits.  The HGM-on, DF-on corner
# is the default ``mla`` run of Table 1.
ABLATION = {
    (False, False): Variant(
        "mla", (("model_config.mla.hgm", "off"), ("model_config.mla.fusion", "mean"))
    ),
    (False, True): Variant(
        "mla", (("model_config.mla.hgm", "off"), ("model_config.mla.fusion", "entropy"))
    ),
    (True, False): Variant(
        "mla", (("model_config.mla.hgm", "owm"), ("model_config.mla.fusion", "mean"))
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
    "ogm": "OGM",
    "opm": "OPM",
    "greedy": "Greedy",
    "pmr": "PMR",
    "agm": "AGM",
    "mmcosine": "MMCosine",
    "umt": "UMT",
    "ume": "UME",
    "cml": "CML",
    "mbsd": "MBSD",
    "mmpareto": "MMPareto",
    "lfm": "LFM",
    "inforeg": "InfoReg",
    "gblending": "G-Blending",
    "reconboost": "ReconBoost",
    "relearning": "D&R",
    "aug": "AUG",
    "modality_valuation": "Modality-valuation",
    "amco": "AMCo",
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
    "test_max": "NOT A FAIR SELECTION: the epoch with the best test accuracy (BalanceBenchmark's "
    "and the MLA authors' code); optimistic",
    "best_on_test": "NOT A FAIR SELECTION: the epoch with the best test accuracy (best_on_test, "
    "the old name of test_max); optimistic",
}
# Selections that read the test split: their cells are marked in every table
# (:func:`selection_variant`, :data:`TEST_SELECTED_MARK`).
TEST_SELECTIONS = ("test_max", "best_on_test")
TEST_SELECTED_SUFFIX = "@test_max"
TEST_SELECTED_MARK = "‡"
TEST_SELECTED_LEGEND = (
    f"{TEST_SELECTED_MARK} selected on the test split (protocol.selection: test_max, "
    "the best test epoch, as BalanceBenchmark reports): not a fair selection, optimistic; shown only "
    "to compare with published numbers"
)


def selection_variant(variant: str, selection: str | None) -> str:
    """The name a run's variant has in the reports: ``concat@test_max`` for a run selected
    on the test split, so its cells form their own, marked column beside the fair ones."""
    return variant + TEST_SELECTED_SUFFIX if selection in TEST_SELECTIONS else variant


def split_test_selected(variant: str) -> tuple[str, bool]:
    """``(variant without the suffix, whether it was selected on test)``."""
    if variant.endswith(TEST_SELECTED_SUFFIX):
        return variant[: -len(TEST_SELECTED_SUFFIX)], True
    return variant, False


def variant_order(variants) -> list:
    """The paper's method order (Table 1's, the Table-2 methods before MLA), then MLA's
    ablation variants, then anything else; a test-selected variant right after its
    val-selected one (side by side)."""
    variants = set(variants)
    bases = {split_test_selected(v)[0] for v in variants}
    known = METHODS[:-1] + MISSING_METHODS + ["mla"] + OPTIONAL_METHODS
    known += [v.name for v in ABLATION.values()] + ["probe"]
    ordered = [v for v in dict.fromkeys(known) if v in bases]
    ordered += sorted(v for v in bases if v not in ordered)
    pairs = [(v, v + TEST_SELECTED_SUFFIX) for v in ordered]
    return [v for pair in pairs for v in pair if v in variants]


@functools.cache
def mmf_models() -> tuple[str, ...]:
    """MMF's own models the leaderboard accepts (``mmf_models.yaml``)."""
    with open(MMF_MODELS_FILE) as f:
        return tuple(yaml.safe_load(f)["models"])


def plugin_models() -> list[str]:
    """The plugin's models: one YAML each in ``mla_plugin/configs/models``."""
    return sorted(f[:-5] for f in os.listdir(PLUGIN_MODELS_DIR) if f.endswith(".yaml"))


def is_known_method(name: str) -> bool:
    """A leaderboard method: one of :data:`KNOWN_METHODS`, a plugin model or one of MMF's
    models (run through :class:`~mla_plugin.models.mmf_adapter.MMFModelAdapter`)."""
    return name in KNOWN_METHODS or name in plugin_models() or name in mmf_models()


def unimodal_variant(modality: str) -> Variant:
    """Table 1's unimodal reference on one modality (``unimodal[modality=audio]``)."""
    return Variant(UNIMODAL, ((f"model_config.{UNIMODAL}.modality", modality),))


def reference_modality(variant: str) -> str | None:
    """The modality of a unimodal reference variant's name, else None."""
    prefix = f"{UNIMODAL}[modality="
    if variant.startswith(prefix) and variant.endswith("]") and "," not in variant:
        return variant[len(prefix) : -1]
    return None


def variant_label(variant: str) -> str:
    base, on_test = split_test_selected(variant)
    if on_test:
        return f"{variant_label(base)} {TEST_SELECTED_MARK}test-selected"
    if variant in METHOD_LABELS:
        return METHOD_LABELS[variant]
    if variant in mmf_models():
        return f"{variant} (MMF)"  # e.g. MMF's late_fusion beside our "Late Fusion"
    for key, v in ABLATION.items():
        if v.name == variant:
            return f"MLA {ABLATION_LABELS[key]}"
    return variant


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def all_registered() -> list[str]:
    """Every plugin model (a YAML in configs/models), in the paper's order, then the
    field's methods, then the rest by name.  MMF's own models are named one by one."""
    known = ALL_METHODS + MISSING_METHODS + MODULATION_METHODS + STAGED_METHODS
    models = plugin_models()
    return [m for m in dict.fromkeys(known) if m in models] + sorted(
        m for m in models if m not in known
    )


# ``--methods <set>``: named sets of methods
METHOD_SETS = {
    "all": all_registered(),
    "paper": ALL_METHODS,  # Table 1's eight and the unimodal model (``all`` before the field)
    "table1": METHODS,
    "table2": TABLE2_METHODS,
    "modulation": registered(MODULATION_METHODS),
    "staged": registered(STAGED_METHODS),
    "balance": registered(BALANCE_METHODS),
}
