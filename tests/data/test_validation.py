"""The validation pass before training (mla_plugin/data/validation.py and
mla_plugin/trainers/preflight.py; docs/reliability.md, "Validation before training"):
each class of bad input stops the run at load() with a message naming the file, key or
row, and the pass changes nothing in a valid run."""

import random

import numpy as np
import pytest
import torch

from mla_plugin.data.errors import DataError
from mla_plugin.data.features import FeaturesDataset
from mla_plugin.data.missing import TrainMasked
from mla_plugin.data.validation import (
    DroppedRows,
    describe_row,
    read_class_list,
    validate_splits,
)
from tests.support import make_trainer

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "dataset_config.synthetic.num_classes=4",
    "training.batch_size=16",
    "training.max_epochs=1",
]


# ---------------------------------------------------------------- classes.txt
def _classes(tmp_path, raw: bytes):
    path = tmp_path / "classes.txt"
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize(
    "raw",
    [
        b"cat\ndog\nbird\n",
        b"\xef\xbb\xbfcat\ndog\nbird",  # UTF-8 BOM
        b"cat\r\ndog\r\nbird\r\n\r\n\n",  # CRLF, trailing blank lines
        b"  cat \n\tdog\nbird  \n",  # surrounding spaces
    ],
)
def test_class_list_accepts_utf8_bom_crlf_and_trailing_blanks(tmp_path, raw):
    assert read_class_list(_classes(tmp_path, raw)) == ["cat", "dog", "bird"]


def test_class_list_keeps_non_ascii_names(tmp_path):
    path = _classes(tmp_path, "café\nnaïve\n".encode())
    assert read_class_list(path) == ["café", "naïve"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"cat\n\ndog\n", r"line 2 of the class list is blank"),
        (b"cat\ndog\ncat\n", r"line 3 of the class list repeats 'cat' \(first on line 1\)"),
        (b"cat\ncaf\xe9\n", r"not UTF-8 text \(byte 0xe9 on line 2\)"),
        ("cat\ndog\n".encode("utf-16"), r"is UTF-16"),
        (b"\n\n  \n", r"has no class names"),
        (b"", r"has no class names"),
    ],
)
def test_class_list_errors_name_file_and_line(tmp_path, raw, expected):
    path = _classes(tmp_path, raw)
    with pytest.raises(DataError, match=expected) as err:
        read_class_list(path)
    assert str(path) in str(err.value)


def _features(tmp_path, classes=None, **arrays):
    rng = np.random.default_rng(0)
    base = {
        "y": np.array([0, 1, 2, 0, 1, 2]),
        "x_a": rng.normal(size=(6, 3)),
        "x_b": rng.normal(size=(6, 2)),
    }
    base.update(arrays)
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", **base)
    if classes is not None:
        (tmp_path / "classes.txt").write_bytes(classes)
    return tmp_path


def test_features_builder_uses_the_class_list_parser(tmp_path):
    _features(tmp_path, classes=b"\xef\xbb\xbfa\nb\nc\n")
    assert FeaturesDataset(tmp_path, "test").class_names == ["a", "b", "c"]
    (tmp_path / "classes.txt").write_bytes(b"a\nb\nb\n")
    with pytest.raises(DataError, match=r"classes\.txt: line 3 .* repeats 'b'"):
        FeaturesDataset(tmp_path, "test")


def test_npy_file_in_place_of_npz_is_named(tmp_path):
    _features(tmp_path)
    with open(tmp_path / "test.npz", "wb") as fh:
        np.save(fh, np.zeros((6, 3)))
    with pytest.raises(  # said once (it was wrapped in a second "cannot read feature file")
        DataError,
        match=r"^cannot read feature file \S*test\.npz: it holds one array of shape \(6, 3\)",
    ):
        FeaturesDataset(tmp_path, "train")


# ------------------------------------------------------- values after the cast
def test_float64_overflowing_float32_is_an_error_naming_row_and_key(tmp_path):
    x = np.random.default_rng(1).normal(size=(6, 3))
    x[4, 1] = 1e300  # finite as float64, inf as float32
    _features(tmp_path, x_a=x)
    with pytest.raises(
        DataError,
        match=r"test\.npz: sample 4 has NaN/inf features in key 'x_a' as float32 "
        r"\(magnitudes above 3.4e38 overflow\)",
    ):
        FeaturesDataset(tmp_path, "test")
    with pytest.warns(UserWarning, match=r"skipped 1 samples .* sample 4, key 'x_a'"):
        data = FeaturesDataset(tmp_path, "test", on_bad_sample="skip")
    assert data.skipped == 1 and 4 not in data.source_rows.tolist()


class Reader:
    """A tiny in-memory reader (with get_batch unless ``batch=False``)."""

    def __init__(self, x, mask, y, num_classes, batch=True):
        self.modalities = ["a", "b"]
        self.num_classes = num_classes
        self.inputs = {"a": torch.as_tensor(x[0]), "b": torch.as_tensor(x[1])}
        self.mask = torch.as_tensor(mask, dtype=torch.bool)
        self.targets = torch.as_tensor(y)
        if batch:
            self.get_batch = self._get_batch

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return {
            "inputs": {m: v[i] for m, v in self.inputs.items()},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": torch.tensor(i),
        }

    def _get_batch(self, indices):
        i = torch.as_tensor(list(indices), dtype=torch.long)
        return {
            "inputs": {m: v[i] for m, v in self.inputs.items()},
            "mask": self.mask[i],
            "targets": self.targets[i],
            "index": i,
        }


def _reader(n=6, num_classes=3, batch=True, mask=None, y=None, a=None):
    a = torch.randn(n, 4) if a is None else a
    mask = torch.ones(n, 2, dtype=torch.bool) if mask is None else mask
    y = torch.arange(n) % num_classes if y is None else y
    return Reader((a, torch.randn(n, 5)), mask, y, num_classes, batch)


def _splits(**over):
    splits = {"train": _reader(), "val": _reader(), "test": _reader()}
    splits.update(over)
    return splits


def test_valid_splits_pass_unchanged():
    splits = _splits()
    out, dropped = validate_splits(splits, "toy")
    assert dropped == {} and all(out[s] is splits[s] for s in splits)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_an_error_naming_split_row_and_modality(value):
    a = torch.randn(6, 4)
    a[3, 2] = value
    with pytest.raises(
        DataError, match=r"toy, val split: modality 'a' has non-finite .* sample 3"
    ) as e:
        validate_splits(_splits(val=_reader(a=a)), "toy")
    nan = value != value
    assert ("a NaN" in str(e.value)) == nan and ("an inf" in str(e.value)) != nan


def test_non_finite_input_in_an_absent_cell_is_ignored():
    a = torch.randn(6, 4)
    a[3] = float("nan")
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[3, 0] = False
    splits = _splits(test=_reader(a=a, mask=mask))
    out, dropped = validate_splits(splits, "toy")
    assert dropped == {} and all(out[s] is splits[s] for s in splits)  # every row kept
    assert len(out["test"]) == 6


# ------------------------------------------------------------ labels, classes
@pytest.mark.parametrize("label", [3, -1, 99])
def test_label_outside_the_classes_is_an_error(label):
    y = torch.tensor([0, 1, 2, label, 1, 2])
    with pytest.raises(DataError, match=rf"test split: label {label} outside \[0, 3\) at sample 3"):
        validate_splits(_splits(test=_reader(y=y)), "toy")


def test_float_labels_are_an_error():
    y = torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    with pytest.raises(DataError, match=r"train split: labels must be integers"):
        validate_splits(_splits(train=_reader(y=y)), "toy")


def test_class_without_training_sample_is_an_error_unless_allowed(tmp_path):
    y = torch.tensor([0, 1, 0, 1, 0, 1])  # class 2 never in train
    with pytest.raises(DataError, match=r"class\(es\) 2 have no sample in the train split"):
        validate_splits(_splits(train=_reader(y=y)), "toy")
    validate_splits(_splits(train=_reader(y=y)), "toy", empty_classes="allow")
    # names from classes.txt
    _features(tmp_path, classes=b"a\nb\nc\nd\n")
    readers = {s: FeaturesDataset(tmp_path, s) for s in ("train", "val", "test")}
    with pytest.raises(DataError, match=r"class\(es\) 3 \('d'\) have no sample"):
        validate_splits(readers, "features")


@pytest.mark.parametrize(
    "key, value", [("empty_samples", "skip"), ("empty_classes", "ignore"), ("empty_samples", 1)]
)
def test_bad_policy_value_names_the_key(key, value):
    with pytest.raises(DataError, match=rf"protocol\.{key}: .* is not one of"):
        validate_splits(_splits(), "toy", **{key: value})


# ----------------------------------------------------------------- presence
def test_sample_without_modality_names_file_and_row(tmp_path):
    _features(tmp_path)
    test = dict(np.load(tmp_path / "test.npz"))
    test["m_a"] = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    test["m_b"] = np.array([1, 1, 1, 0, 1, 1], dtype=bool)  # row 3: neither
    np.savez(tmp_path / "test.npz", **test)
    readers = {s: FeaturesDataset(tmp_path, s) for s in ("train", "val", "test")}
    with pytest.raises(DataError) as err:
        validate_splits(readers, "features")
    message = str(err.value)
    assert message.startswith("features, test split: 1 of 6 samples have no modality present")
    assert f"{tmp_path / 'test.npz'} row 3;" in message
    assert "protocol.empty_samples=drop" in message and "mask_scheme" in message


@pytest.mark.parametrize("batch", [True, False])
def test_dropped_samples_are_counted_and_renumbered(batch):
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[[1, 4]] = False
    lines = []
    out, dropped = validate_splits(
        _splits(val=_reader(mask=mask, batch=batch)),
        "toy",
        empty_samples="drop",
        log=lines.append,
    )
    val = out["val"]
    assert isinstance(val, DroppedRows) and dropped == {"val": 2} and len(val) == 4
    assert [int(val[i]["index"]) for i in range(4)] == [0, 1, 2, 3]
    assert [int(val[i]["targets"]) for i in range(4)] == [0, 2, 0, 2]  # rows 0, 2, 3, 5
    assert describe_row(val, 1) == "sample 2"
    assert len(lines) == 1 and "dropped 2 of 6 samples" in lines[0]
    if batch:
        got = val.get_batch([3, 0])
        assert got["index"].tolist() == [3, 0] and got["targets"].tolist() == [2, 0]


def test_every_sample_empty_is_an_error_even_when_dropping():
    mask = torch.zeros(6, 2, dtype=torch.bool)
    with pytest.raises(DataError, match=r"every sample has no modality present"):
        validate_splits(_splits(test=_reader(mask=mask)), "toy", empty_samples="drop")


def test_deliberate_train_mask_and_zero_filled_models_are_not_checked():
    train = TrainMasked(_reader(n=12), {"a": 1.0, "b": 0.5})  # half the samples: none left
    assert (~train.get_batch(range(12))["mask"].any(dim=1)).any()
    splits = _splits(train=train)
    out, dropped = validate_splits(splits, "toy")
    assert dropped == {} and out["train"] is train and len(out["train"]) == 12  # none dropped
    mask = torch.zeros(6, 2, dtype=torch.bool)
    mask[:, 0] = torch.tensor([1, 0, 1, 1, 1, 1], dtype=torch.bool)
    splits = _splits(val=_reader(mask=mask))
    out, dropped = validate_splits(splits, "toy", check_presence=False)
    assert dropped == {} and out["val"] is splits["val"] and len(out["val"]) == 6


# --------------------------------------------------------- through the trainer
def test_bernoulli_high_missing_rate_is_refused_at_load(tmp_path):
    """The case that used to die after epoch 1: bernoulli masks leave samples with no
    modality, which the first evaluation cannot fuse."""
    opts = TINY + [
        "dataset_config.synthetic.missing_rate=0.9",
        "dataset_config.synthetic.mask_scheme=bernoulli",
    ]
    with pytest.raises(DataError, match=r"synthetic, train split: \d+ of 64 samples have no"):
        make_trainer(str(tmp_path / "a"), *opts)
    trainer = make_trainer(str(tmp_path / "b"), *opts, "protocol.empty_samples=drop")
    dropped = trainer.ctx.data_report["dropped_samples"]
    assert set(dropped) == {"train", "val", "test"}
    for split, n in dropped.items():
        sizes = {"train": 64, "val": 32, "test": 32}
        assert len(trainer.datasets[split]) == sizes[split] - n
        reader = trainer.datasets[split].reader
        assert all(bool(reader[i]["mask"].any()) for i in range(len(reader)))
    assert trainer.model.config.num_train_samples == len(trainer.datasets["train"])


def test_wrong_fixed_weights_length_is_refused_at_load(tmp_path):
    with pytest.raises(ValueError, match=r"fixed_weights: 3 weights .* for 2 modalities"):
        make_trainer(
            str(tmp_path),
            *TINY,
            "model_config.mla.fusion=fixed",
            "model_config.mla.fixed_weights=[0.2,0.3,0.5]",
        )


@pytest.mark.parametrize("step_size", ["0", "-3", "2.5"])
def test_bad_step_size_is_refused_at_load(tmp_path, step_size):
    with pytest.raises(ValueError, match=r"scheduler\.params\.step_size.* integer >= 1"):
        make_trainer(str(tmp_path), *TINY, f"scheduler.params.step_size={step_size}")


def test_dry_forward_pass_catches_an_evaluation_error_before_training(tmp_path):
    """Negative fixed fusion weights fail only in the fused (evaluation) forward."""
    from mla_plugin.trainers.preflight import PreflightError

    with pytest.raises(PreflightError, match=r"dry forward pass of mla on synthetic, train split"):
        make_trainer(
            str(tmp_path),
            *TINY,
            "model_config.mla.fusion=fixed",
            "model_config.mla.fixed_weights=[-1.0,2.0]",
        )


def test_dry_forward_pass_changes_no_state(tmp_path):
    from mla_plugin.trainers.preflight import dry_forward

    trainer = make_trainer(str(tmp_path), *TINY, "model=concat")
    trainer.model.train()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    states = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    ctx = trainer.ctx
    dry_forward(
        ctx.model,
        ctx.datasets,
        batch_size=ctx.batch_size,
        to_device=ctx.to_device,
        amp=ctx.amp,
        run="concat on synthetic",
    )
    assert trainer.model.training
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert torch.equal(states[0], torch.get_rng_state())
    assert np.array_equal(states[1], np.random.get_state()[1]) and states[2] == random.getstate()
