"""Every registered method learns: the contract each model of the plugin meets.

The methods are the plugin's own model configs (``mla_plugin/configs/models/*.yaml``), so a
method is covered by being registered.  MMF's own models, trained through
``mmf_adapter.py``, are left to their own tests (tests/models/test_mmf_models.py).

Each trains in-process, as ``mmf_run`` builds it, on ``synthetic`` (10 classes; the strong
modality's class means at scale 3, easy; the weak one's at 1) with 384 train, 128 val and
256 test samples, 8 epochs (lr 0.05, StepLR at epoch 7).  Its fused test accuracy must
exceed the test split's majority-class rate (``metrics.json`` "majority", 0.129 here) by
``MARGIN``.

Measured (fused test accuracy at training seeds 1 / 2 / 3, 2-core machine, this stop):
ae .61/.64/.74, bigated* .32/.48/.35, cca .71/.71/.73, concat .79/.82/.80,
cpm_net .56/.59/.64, cra* .57/.68/.61, dcca .64/.71/.68, dccae .63/.72/.69,
film .75/.73/.78, if_mmin .55/.45/.51, mla .82/.83/.84, mla_late_fusion .82/.81/.82,
mmin .52/.50/.59, ogm_ge .57/.65/.59, qmf .81/.81/.82, sum .80/.80/.81,
tate .86/.79/.79, unimodal .81/.80/.80.
The field's methods: agm .78/.77/.80, amco .46/.34/.26 (its mask zeroes the strong
modality's logits on about every other step from epoch 2; excess 0.13 at seed 3, the
tests run seed 1), aug .69/.73/.79, cml .80/.82/.80, gblending .59/.68/.63 (its estimate
at epoch 0 weights the heads from the copies' overfitting ratios), greedy .80/.79/.80,
inforeg .77/.80/.83, lfm .76/.81/.79, mbsd .79/.80/.81, mmcosine .85/.80/.82,
mmpareto .80/.86/.84, modality_valuation .81/.82/.80, ogm .57/.65/.61 (as ogm_ge: k ≈ 0.02
on the strong encoder from the second epoch), opm .78/.80/.81, pmr .80/.81/.82, reconboost .77/.77/.75
(8 epochs: one boosting round of the strong modality, then rectify), relearning
.79/.82/.80 (the default period, 20 epochs, re-initialises nothing in 8), ume .82/.81/.82,
umt .29/.31/.33 (its default 5 teacher epochs leave the student 3 of the 8; concat trained
3 epochs reaches .39).
At seed 1, the one the test runs, the lowest excess over the majority is 0.16 (umt; 0.19
for bigated before the field's methods; amco's lowest, at seed 3, is 0.13); concat with its
loss multiplied by zero (checked by hand, not kept) reached
0.051 and failed.  ``MARGIN`` = 0.10: well under the smallest measured excess.
The whole contract: about 45 s on one core (20 s of it importing MMF).

* Own entries (``SETTINGS``), not a looser bar:
  - bigated: its default gate is the first modality, so the class signal must pass through
    the weak one's hidden state (0.12-0.16 at these settings, at chance); with the weak
    modality as the gate the strong one carries it.
  - cra: at ``lambda_recon`` 1 the cascade's reconstruction term dominates at lr 0.05
    (0.23-0.27, or diverges: seed 3); at 0.1 it learns.
"""

import glob
import os

import pytest

from tests.support import REPO, make_trainer, read_metrics

METHODS = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(REPO, "mla_plugin", "configs", "models", "*.yaml"))
)
SIZES = [
    "dataset_config.synthetic.sizes.train=384",
    "dataset_config.synthetic.sizes.val=128",
    "dataset_config.synthetic.sizes.test=256",
    "training.max_epochs=8",
    "training.batch_size=64",
]
SETTINGS = {
    "bigated": ["model_config.bigated.gate=weak"],
    "cra": ["model_config.cra.lambda_recon=0.1"],
}
MARGIN = 0.10


def test_every_model_config_is_covered():
    assert len(METHODS) >= 18 and {"mla", "concat", "tate", "unimodal"} <= set(METHODS)
    assert set(SETTINGS) <= set(METHODS), "an own entry names a method no longer registered"


@pytest.mark.parametrize("method", METHODS)
def test_method_learns(method, tmp_path):
    trainer = make_trainer(str(tmp_path), f"model={method}", *SIZES, *SETTINGS.get(method, []))
    trainer.train()
    metrics = read_metrics(str(tmp_path))
    majority = metrics["majority"]["test"]["rate"]["multi"]
    accuracy = metrics["test"]["multi"]
    assert metrics["method"] == method and metrics["majority"]["test"]["samples"] == 256
    assert accuracy > majority + MARGIN, (
        f"{method}: fused test accuracy {accuracy:.3f} is not {MARGIN} above the majority "
        f"rate {majority:.3f}"
    )
