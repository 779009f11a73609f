"""Property-based tests (Hypothesis) of the three readers of user input: the ``features``
loader, the ``classes.txt`` parser and the config check.  For any generated input of the
right general form each either accepts it or raises the project's own error (DataError,
ConfigError) naming the file and the key or row -- never another exception type.

Deterministic: ``derandomize=True`` (a fixed seed), a bounded ``max_examples``, no
example database, no deadline (the machine is shared)."""

import glob
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mla_plugin.config_schema import (
    ConfigError,
    check_declared,
    check_section,
    declared_ranges,
    defaults_of,
)
from mla_plugin.data.errors import DataError
from mla_plugin.data.features import FeaturesDataset
from mla_plugin.data.validation import read_class_list
from tests.support import REPO

FIXED = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# ------------------------------------------------------------------ classes.txt
PIECES = st.sampled_from([*"ab é\t\r\n\ufeff\x00,;#", "  ", "\u2028", "cat", "dog"])
LINES = st.lists(st.lists(PIECES, max_size=4).map("".join), max_size=6).map("\n".join)
ENCODED = st.one_of(
    st.tuples(LINES, st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])).map(
        lambda t: t[0].encode(t[1], errors="replace")
    ),
    st.binary(max_size=64),
)


@FIXED
@given(raw=ENCODED)
def test_class_list_loads_or_names_the_file(raw):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "classes.txt")
        with open(path, "wb") as f:
            f.write(raw)
        try:
            names = read_class_list(path)
        except DataError as e:
            assert str(e).startswith(f"{path}: "), str(e)
            return
    assert names and len(set(names)) == len(names)
    assert all(n and n == n.strip() for n in names)


# ------------------------------------------------------------------ features
MODALITIES = st.lists(
    st.sampled_from(["audio", "text", "video"]), min_size=1, max_size=3, unique=True
)
BAD_NAMES = ["", "b.v2", "mask", "targets", "train"]
FAULTS = [
    "nan", "inf", "huge", "y_half", "y_nan", "y_2d", "y_missing", "y_bool", "label_out",
    "x_short", "x_1d", "x_complex", "x_other_width", "mask_shape", "mask_values",
    "mask_orphan", "mask_all_absent", "bad_name", "no_x", "empty",
]  # fmt: skip


@st.composite
def feature_file(draw, modalities, fault=None, width=2):
    """A valid split file of ``modalities``, with ``fault`` (one of FAULTS) if given."""
    faults = [fault] if fault else []
    n = 0 if "empty" in faults else draw(st.integers(1, 8))
    y = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=np.int64)
    arrays = {"y": y}
    for m in [] if "no_x" in faults else modalities:
        arrays[f"x_{m}"] = np.asarray(
            draw(st.lists(st.floats(-2, 2), min_size=n * width, max_size=n * width)),
            dtype=np.float32,
        ).reshape(n, width)
        if draw(st.booleans()):
            arrays[f"m_{m}"] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    first = f"x_{modalities[0]}"
    row = draw(st.integers(0, max(n - 1, 0)))
    if n and first in arrays:
        x = arrays[first]
        for fault, value in (("nan", np.nan), ("inf", np.inf)):
            if fault in faults:
                x[row, 0] = value
        if "huge" in faults:
            arrays[first] = x.astype(np.float64) * 1e39
        if "x_short" in faults:
            arrays[first] = x[:-1]
        if "x_1d" in faults:
            arrays[first] = x[:, 0]
        if "x_complex" in faults:
            arrays[first] = x.astype(np.complex64)
        if "x_other_width" in faults:
            arrays[first] = np.zeros((n, width + 1), np.float32)
        if "mask_shape" in faults:
            arrays[f"m_{modalities[0]}"] = np.ones(n + 1, bool)
        if "mask_values" in faults:
            arrays[f"m_{modalities[0]}"] = np.full(n, 2)
        if "mask_all_absent" in faults:
            for m in modalities:
                arrays[f"m_{m}"] = np.zeros(n, bool)
    if "mask_orphan" in faults:
        arrays["m_smell"] = np.ones(n, bool)
    if "bad_name" in faults:
        arrays[f"x_{draw(st.sampled_from(BAD_NAMES))}"] = np.zeros((n, 1), np.float32)
    if n and "label_out" in faults:
        y[row] = draw(st.sampled_from([-1, 3, 99]))
    if "y_half" in faults:
        arrays["y"] = y + 0.5
    if "y_nan" in faults and n:
        arrays["y"] = y.astype(float)
        arrays["y"][row] = np.nan
    if "y_2d" in faults:
        arrays["y"] = y.reshape(-1, 1)
    if "y_bool" in faults:
        arrays["y"] = y > 0
    if "y_missing" in faults:
        del arrays["y"]
    return arrays


@st.composite
def feature_folder(draw, fault):
    """train, test and (or not) val files; one of them has ``fault``."""
    modalities, width = draw(MODALITIES), draw(st.integers(1, 3))
    faulty = draw(st.sampled_from(["train", "test", "val"]))

    def file(split, mods=modalities):
        return feature_file(mods, fault if split == faulty else None, width)

    files = {s: draw(file(s)) for s in ("train", "test")}
    if faulty == "test" and draw(st.booleans()):  # another set of modalities
        files["test"] = draw(file("other", draw(MODALITIES)))
    files["val"] = draw(st.one_of(st.none(), file("val")))
    return files


@pytest.mark.parametrize("fault", [None, *FAULTS])
@settings(FIXED, max_examples=12)
@given(
    data=st.data(),
    classes=st.sampled_from([None, None, "a\nb\nc\n", "a\n\nb\n", "a\na\n", "a\nb\n"]),
    split=st.sampled_from(["train", "val", "test"]),
    val_fraction=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
    missing_rate=st.sampled_from([0.0, 0.5]),
    on_bad_sample=st.sampled_from(["error", "skip"]),
    as_npy=st.sampled_from([False] * 9 + [True]),
)
def test_features_load_or_name_the_file(
    fault, data, classes, split, val_fraction, missing_rate, on_bad_sample, as_npy
):
    files = data.draw(feature_folder(fault))
    with tempfile.TemporaryDirectory() as d:
        for name, arrays in files.items():
            if arrays is None:
                continue
            if name == "test" and as_npy:  # a .npy array where an archive belongs
                with open(os.path.join(d, "test.npz"), "wb") as f:
                    np.save(f, np.zeros((2, 3)))
            else:
                np.savez(os.path.join(d, f"{name}.npz"), **arrays)
        if classes is not None:
            with open(os.path.join(d, "classes.txt"), "w") as f:
                f.write(classes)
        try:
            ds = FeaturesDataset(
                d,
                split,
                val_fraction=val_fraction,
                missing_rate=missing_rate,
                on_bad_sample=on_bad_sample,
            )
        except DataError as e:
            assert str(e).startswith(d) or f"{d}/" in str(e), str(e)
            event(f"refused: {str(e)[len(d) :].split(':')[1][:40]}")
            return
    event("loaded")
    assert len(ds) > 0 and ds.modalities
    item = ds[len(ds) - 1]  # every sample reads, features finite where present
    assert set(item["inputs"]) == set(ds.modalities)
    assert 0 <= int(item["targets"]) < ds.num_classes


# ------------------------------------------------------------------ the config check
YAMLS = sorted(glob.glob(os.path.join(REPO, "mla_plugin", "configs", "*", "*.yaml")))
VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=5,
)


def _case(path_yaml):
    kind = "model_config" if "/models/" in path_yaml else "dataset_config"
    path = f"{kind}.{os.path.splitext(os.path.basename(path_yaml))[0]}"
    ranged = [k[len(path) + 1 :].split(".")[0] for k in declared_ranges(path_yaml)]
    return path, defaults_of(path_yaml, path), ranged


SECTIONS = [p for p in YAMLS if "/models/" in p or "/datasets/" in p]


@pytest.mark.parametrize("path_yaml", SECTIONS, ids=lambda p: os.path.relpath(p, REPO))
@settings(FIXED, max_examples=15)
@given(data=st.data())
def test_the_config_check_accepts_or_names_the_key(path_yaml, data):
    path, defaults, ranged = _case(path_yaml)
    # the keys with a declared range twice as likely, and a typo
    pool = [*defaults, *ranged, *ranged, "typo_key"]
    keys = data.draw(st.lists(st.sampled_from(pool), max_size=4, unique=True))
    section = {k: data.draw(VALUE) for k in keys}
    open_keys = ("encoders", "normalize")
    try:
        check_section(path, section, defaults, open_keys)
        check_declared(path, section, path_yaml)
    except ConfigError as e:
        named = [k for k in section if f"{path}.{k}" in str(e)]
        assert named, str(e)
        return
    for key, value in section.items():  # what passes is of the default's kind
        default = defaults.get(key)
        if isinstance(default, bool) and value is not None:
            assert isinstance(value, bool), (key, value)
