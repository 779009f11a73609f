"""The one name of a variant (mla_plugin/utils/variants.py), used by the trainer's
metrics.json and the leaderboard alike."""

from mla_plugin.utils import variants


def test_variant_lists_each_switch_off_the_model_defaults():
    section = {"hgm": "off", "fusion": "mean", "schedule": "round_robin"}
    changed = variants.switches("mla", section)
    assert changed == {"fusion": "mean", "hgm": "off", "schedule": "round_robin"}
    assert variants.variant_name("mla", changed) == "mla[fusion=mean,hgm=off,schedule=round_robin]"
    assert variants.switches("mla", {"hgm": "owm"}) == {}
    assert variants.variant_name("mla", {}) == "mla"
    # interpolated defaults (encoders, modalities) are the dataset's, not switches
    assert "encoders" not in variants.model_defaults("mla")
    # another model's switch; values print as YAML writes them
    assert variants.switches("ogm_ge", {"ogm_alpha": 0.1}) == {"ogm_alpha": 0.1}
    assert variants.variant_name("x", {"a": None, "b": True}) == "x[a=null,b=true]"
