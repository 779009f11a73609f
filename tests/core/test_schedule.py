import pytest

from mla_plugin.core.schedule import SCHEDULES, modalities_for_iteration


def test_round_robin_cycles_eq1():
    mods = ["audio", "visual", "text"]
    got = [modalities_for_iteration("round_robin", mods, t) for t in range(7)]
    assert got == [["audio"], ["visual"], ["text"], ["audio"], ["visual"], ["text"], ["audio"]]


def test_per_batch_sequential_returns_all_in_order():
    mods = ("audio", "visual")
    for t in range(3):
        assert modalities_for_iteration("per_batch_sequential", mods, t) == ["audio", "visual"]


def test_bad_schedule_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        modalities_for_iteration("per_epoch", ["a", "v"], 0)
    assert all(name in str(err.value) for name in SCHEDULES)
    with pytest.raises(ValueError):
        modalities_for_iteration("round_robin", [], 0)
