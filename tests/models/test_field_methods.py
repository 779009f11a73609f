"""Every balanced-learning method of the field (the ``balance``, ``modulation`` and
``staged`` method sets, those registered: mla_plugin/leaderboard/methods.py) trains through
the trainer as ``mmf_run`` builds it on real data, avdigits (FSDD speech paired with
handwritten digits), at missing rates 0 and 0.5, and a run killed mid-epoch resumes
bit-identically.  Whether each learns is tests/models/test_learns.py's contract; its
mechanism is its own test file's (hand-computed numbers).

avdigits here is tiny (3 clips per class and split, 20 x 50 fbank): a run takes a few
seconds, so the whole file stays about 10 s per method.
"""

import os

import pytest
import torch

from mla_plugin.leaderboard.methods import (
    BALANCE_METHODS,
    MODULATION_METHODS,
    STAGED_METHODS,
    registered,
)
from tests.support import REPO, make_trainer, read_metrics

FIELD = registered(dict.fromkeys(BALANCE_METHODS + MODULATION_METHODS + STAGED_METHODS))
AVDIGITS = "projects/mla/configs/avdigits.yaml"
TINY_AVDIGITS = [
    "dataset_config.avdigits.max_per_class=3",
    "dataset_config.avdigits.audio_mel_bins=20",
    "dataset_config.avdigits.audio_frames=50",
    "multimodal.encoders.audio.params.in_dim=1000",
    "training.batch_size=10",
    "training.max_epochs=2",
]
TINY_SYNTHETIC = [
    "dataset_config.synthetic.sizes.train=128",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=32",  # 4 batches per epoch
    # validation after every update: the killed run validates where it stops (update 5),
    # so the straight run must too, or a better val there selects other weights for test
    "training.evaluation_interval=1",
]


@pytest.fixture(scope="module")
def avdigits_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("avdigits_cache"))


def test_the_field_is_covered():
    assert {"ogm_ge", "mla"} <= set(FIELD)
    assert all(os.path.exists(os.path.join(REPO, "mla_plugin", "configs", "models", f"{m}.yaml"))
               for m in FIELD)  # fmt: skip


@pytest.mark.parametrize("rate", [0.0, 0.5])
@pytest.mark.parametrize("method", FIELD)
def test_trains_on_avdigits(method, rate, avdigits_cache, tmp_path):
    save = str(tmp_path / "run")
    trainer = make_trainer(
        save,
        f"model={method}",
        f"dataset_config.avdigits.cache_dir={avdigits_cache}",
        f"dataset_config.avdigits.missing_rate={rate}",
        *TINY_AVDIGITS,
        config=AVDIGITS,
    )
    trainer.train()
    metrics = read_metrics(save)
    assert metrics["method"] == method
    assert metrics["majority"]["test"]["samples"] == 30
    accuracy = metrics["test"]["multi"]
    assert 0.0 <= accuracy <= 1.0, f"{method} at missing rate {rate}: test accuracy {accuracy}"
    reader = trainer.ctx.datasets["train"].reader  # the readers behind MMF's dataset
    while not hasattr(reader, "mask"):
        reader = reader.reader
    present = reader.mask
    assert bool(present.all()) == (rate == 0.0)  # the missing-modality protocol was applied


def _model(save):
    return torch.load(os.path.join(save, "current.ckpt"), weights_only=False)["model"]


@pytest.mark.parametrize("method", FIELD)
def test_resumes_bit_identically_after_a_kill(method, tmp_path):
    straight = str(tmp_path / "straight")
    make_trainer(straight, f"model={method}", *TINY_SYNTHETIC, "training.max_epochs=3").train()
    # stopped after update 5: mid-epoch whether a batch takes 1, 2 or 3 optimizer steps
    killed = str(tmp_path / "killed")
    make_trainer(
        killed, f"model={method}", *TINY_SYNTHETIC,
        "training.max_epochs=null", "training.max_updates=5",
    ).train()  # fmt: skip
    resumed = make_trainer(
        killed, f"model={method}", *TINY_SYNTHETIC,
        "training.max_epochs=3", "checkpoint.resume=True",
    )  # fmt: skip
    assert resumed.ctx.batch_in_epoch > 0, f"{method}: the kill was not mid-epoch"
    resumed.train()
    a, b = _model(straight), _model(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{method}: resumed run differs from the straight one in {different}"
    assert read_metrics(straight)["test"] == read_metrics(killed)["test"]
