"""Figure 2's training-only mask (``dataset_config.<dataset>.train_mask``): exact counts,
the other modalities and the val/test splits untouched, bad keys refused by name."""

import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mla_plugin.data.missing import (
    TrainMasked,
    check_train_mask,
    parse_train_mask,
    train_mask_absent,
)
from tests.support import REPO


def test_train_mask_absent_has_exact_counts_and_is_seeded():
    absent = train_mask_absent(1001, ["a", "b", "c"], {"b": 0.37, "c": 1.0}, seed=4)
    assert absent.shape == (1001, 3) and absent.dtype == bool
    assert absent[:, 0].sum() == 0  # not listed: never masked
    assert absent[:, 1].sum() == round(0.37 * 1001) == 370
    assert absent[:, 2].all()
    again = train_mask_absent(1001, ["a", "b", "c"], {"b": 0.37, "c": 1.0}, seed=4)
    assert np.array_equal(absent, again)
    other = train_mask_absent(1001, ["a", "b", "c"], {"b": 0.37}, seed=5)
    assert not np.array_equal(absent[:, 1], other[:, 1])
    # b's draw does not depend on what else is masked
    alone = train_mask_absent(1001, ["a", "b", "c"], {"b": 0.37}, seed=4)
    assert np.array_equal(alone[:, 1], absent[:, 1])


@pytest.mark.parametrize(
    "value, message",
    [
        ({"speech": 0.5}, r"train_mask\.speech: unknown modality 'speech'.*a, b"),
        ({"a": 1.5}, r"train_mask\.a must be in \[0, 1\], got 1\.5"),
        ({"a": -0.1}, r"train_mask\.a must be in \[0, 1\]"),
        ({"a": "half"}, r"train_mask\.a must be a number in \[0, 1\], got 'half'"),
        ("a0.5", r"'a0.5' is not MODALITY:RATIO"),
        (0.5, r"must be a mapping"),
    ],
)
def test_bad_train_masks_name_the_key(value, message):
    with pytest.raises(ValueError, match=message):
        check_train_mask(value, ["a", "b"], "dataset_config.x.train_mask")


def test_command_line_form_parses_like_the_mapping():
    assert parse_train_mask("{audio: 0.5, image:0.25}") == {"audio": "0.5", "image": "0.25"}
    assert check_train_mask("audio:0.5", ["audio", "image"]) == {"audio": 0.5}
    assert check_train_mask(None, ["audio"]) == {} == check_train_mask({}, ["audio"])


class _Reader:
    """A tiny in-memory reader with a mask of its own (sample 0 lacks modality a)."""

    modalities = ["a", "b"]
    num_classes = 2

    def __init__(self, n=40):
        self.x = {"a": torch.arange(n * 3.0).reshape(n, 3) + 1, "b": torch.ones(n, 2, 2)}
        self.mask = torch.ones(n, 2, dtype=torch.bool)
        self.mask[0, 0] = False
        self.x["a"][0] = 0

    def __len__(self):
        return len(self.mask)

    def __getitem__(self, i):
        return {
            "inputs": {m: v[i] for m, v in self.x.items()},
            "mask": self.mask[i],
            "targets": torch.tensor(i % 2),
            "index": torch.tensor(i),
        }

    def get_batch(self, indices):
        i = torch.as_tensor(list(indices))
        return {
            "inputs": {m: v[i] for m, v in self.x.items()},
            "mask": self.mask[i],
            "targets": i % 2,
            "index": i,
        }


def test_train_masked_reader_zeroes_the_masked_modality_only():
    raw = _Reader()
    masked = TrainMasked(raw, {"a": 0.5}, seed=1)
    assert int(masked.absent[:, 0].sum()) == 20 and not masked.absent[:, 1].any()
    items = [masked[i] for i in range(len(masked))]
    mask = torch.stack([it["mask"] for it in items])
    # the reader's own missing cell (sample 0, a) stays missing; 20 more at most
    assert not mask[0, 0] and (~mask[:, 0]).sum() == 20 + int(not masked.absent[0, 0])
    assert mask[:, 1].all()
    for i, it in enumerate(items):
        expected_a = raw.x["a"][i] if mask[i, 0] else torch.zeros(3)
        assert torch.equal(it["inputs"]["a"], expected_a)
        assert torch.equal(it["inputs"]["b"], raw.x["b"][i])  # never touched
    batch = masked.get_batch([5, 0, 7])  # the batched path agrees with the items
    for k, i in enumerate([5, 0, 7]):
        assert torch.equal(batch["mask"][k], items[i]["mask"])
        assert torch.equal(batch["inputs"]["a"][k], items[i]["inputs"]["a"])


def test_builder_masks_the_train_split_only():
    from mmf.common.registry import registry

    import mla_plugin

    mla_plugin.register()

    cfg = OmegaConf.load(os.path.join(REPO, "mla_plugin", "configs", "datasets", "synthetic.yaml"))
    dc = cfg.dataset_config.synthetic
    dc.sizes = {"train": 300, "val": 100, "test": 100}
    builder = registry.get_builder_class("synthetic")
    plain = {s: builder().load_dataset(dc, s) for s in ("train", "val", "test")}
    dc.train_mask = "weak:0.4"  # the command line's form
    masked = {s: builder().load_dataset(dc, s) for s in ("train", "val", "test")}

    def stack(ds, field):
        return torch.stack([ds[i][field] for i in range(len(ds))])

    train_mask = stack(masked["train"], "mask")
    assert (~train_mask[:, 1]).sum() == 120 and train_mask[:, 0].all()
    assert torch.equal(stack(masked["train"], "strong"), stack(plain["train"], "strong"))
    weak = stack(masked["train"], "weak")
    assert (weak[~train_mask[:, 1]] == 0).all()
    assert torch.equal(weak[train_mask[:, 1]], stack(plain["train"], "weak")[train_mask[:, 1]])
    for split in ("val", "test"):  # complete, and identical to the unmasked build
        assert stack(masked[split], "mask").all()
        for field in ("strong", "weak", "targets"):
            assert torch.equal(stack(masked[split], field), stack(plain[split], field))
    dc.train_mask = {"loud": 0.5}
    for split in ("train", "test"):  # refused whichever split loads first
        with pytest.raises(ValueError, match=r"dataset_config\.synthetic\.train_mask\.loud"):
            builder().load_dataset(dc, split)
