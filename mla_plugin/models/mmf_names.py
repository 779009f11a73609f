"""The model names MMF itself registers, which the plugin never reuses.

A plugin model keeps its short name (``mla``, ``concat``, ``qmf``...) unless MMF
registers that name, in the rc10 wheel this project runs on or in MMF's main branch;
then it takes the prefix ``mla_`` (``mla_late_fusion``).  So ``registry.get_model_class``
answers the same for every MMF name before and after ``import mla_plugin``
(docs/baselines.md, "Registry names").
"""

# Every name under ``@registry.register_model("...")`` in facebookresearch/mmf main
# (commit b0ffc7fb, read 2026-12) -- a superset of rc10's 21 models.
MMF_MODEL_NAMES = frozenset(
    {
        "ban",
        "butd",
        "cm_shared_transformer",
        "cnn_lstm",
        "concat_bert",
        "concat_bow",
        "krisp",
        "late_fusion",
        "lorra",
        "lxmert",
        "m4c",
        "m4c_captioner",
        "mmbt",
        "mmf_bert",
        "mmf_transformer",
        "mmft",
        "movie_mcan",
        "multihead",
        "pythia",
        "pythia_image_only",
        "pythia_question_only",
        "top_down_bottom_up",
        "unimodal_image",
        "unimodal_text",
        "unit",
        "uniter",
        "vilbert",
        "vilt",
        "vinvl",
        "visual_bert",
    }
)

# ``@registry.register_fusion("...")`` names in MMF main (mmf/modules/fusions.py); a
# plugin fusion rule must not take one of these either.
MMF_FUSION_NAMES = frozenset(
    {
        "block",
        "block_tucker",
        "concat_mlp",
        "linear_sum",
        "mcb",
        "mfb",
        "mfh",
        "mlb",
        "mutan",
        "tucker",
    }
)

PLUGIN_PREFIX = "mla_"
