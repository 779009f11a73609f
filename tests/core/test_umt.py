"""UMT and UME (mla_plugin/core/umt.py, mla_plugin/models/umt.py, ume.py): the feature
distillation and the ensemble's averages by hand; UMT's two stages freeze what they say,
and a kill inside either stage resumes bit-identically."""

import math
import os

import pytest
import torch

from mla_plugin.core.umt import ensemble_average, feature_distillation
from tests.support import make_trainer, read_metrics

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "training.batch_size=16",  # 4 batches, so 4 updates, per epoch
]
UMT = ["model=umt", "model_config.umt.umt_teacher_epochs=1", *TINY]


def test_distillation_card_example_and_mask():
    # card 8: h = (1, 2), teacher (0, 0): MSE = (1 + 4) / 2 = 2.5
    h, t = torch.tensor([[1.0, 2.0], [3.0, 3.0]]), torch.zeros(2, 2)
    assert float(feature_distillation(h[:1], t[:1])) == 2.5
    assert float(feature_distillation(h, t)) == pytest.approx((2.5 + 9.0) / 2)
    assert float(feature_distillation(h, t, torch.tensor([True, False]))) == 2.5


def test_ensemble_averages():
    a = torch.tensor([[math.log(3.0), 0.0]])  # softmax (3/4, 1/4)
    v = torch.tensor([[0.0, 0.0]])  # (1/2, 1/2)
    uni = {"a": a, "v": v}
    got = ensemble_average(uni, None, average="logits")[0].tolist()
    assert got == pytest.approx([math.log(3.0) / 2, 0.0])
    probs = ensemble_average(uni, None, average="probabilities").exp()
    assert probs[0].tolist() == pytest.approx([0.625, 0.375])
    only_a = ensemble_average(uni, torch.tensor([[True, False]]), average="probabilities")
    assert only_a.exp()[0].tolist() == pytest.approx([0.75, 0.25])


def _state(save):
    return torch.load(os.path.join(save, "current.ckpt"), weights_only=False)


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_umt_stages_freeze_and_resume_bit_identically_in_each(tmp_path):
    straight = make_trainer(str(tmp_path / "straight"), *UMT, "training.max_epochs=3")
    initial = {k: v.clone() for k, v in straight.model.state_dict().items()}
    assert [(s.name, s.epochs, s.freezes) for s in straight.model.stages()] == [
        ("teachers", 1, ("encoders", "head")),
        ("student", None, ("teachers",)),
    ]
    straight.train()
    end = _state(str(tmp_path / "straight"))["model"]

    teachers_only = str(tmp_path / "teachers")
    make_trainer(teachers_only, *UMT, "training.max_epochs=1").train()
    after = _state(teachers_only)["model"]
    # the teachers' stage: the student does not move, the teachers do
    assert _equal(_part(after, "encoders"), _part(initial, "encoders"))
    assert _equal(_part(after, "head"), _part(initial, "head"))
    assert not _equal(_part(after, "teachers"), _part(initial, "teachers"))
    # the student's stage (SGD with momentum and weight decay): the teachers stay exactly
    assert _equal(_part(end, "teachers"), _part(after, "teachers"))
    assert not _equal(_part(end, "encoders"), _part(after, "encoders"))

    # killed after update 2 (inside the teachers' stage) and after update 6 (the student's)
    for stop, stage in [(2, "teachers"), (6, "student")]:
        killed = str(tmp_path / f"killed{stop}")
        make_trainer(
            killed, *UMT, "training.max_epochs=null", f"training.max_updates={stop}"
        ).train()
        saved = _state(killed)
        assert saved["callbacks"]["stages"]["current"] == stage
        resumed = make_trainer(killed, *UMT, "training.max_epochs=3", "checkpoint.resume=True")
        assert resumed.ctx.batch_in_epoch > 0  # mid-epoch
        resumed.train()
        assert _equal(_state(killed)["model"], end), f"resumed from the {stage} stage differs"
        assert read_metrics(killed)["test"] == read_metrics(str(tmp_path / "straight"))["test"]


def test_umt_student_loss_and_switches(tmp_path):
    trainer = make_trainer(str(tmp_path), *UMT, "model_config.umt.umt_distill_weight=2.5")
    model = trainer.model
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    ce = torch.nn.functional.cross_entropy
    teacher_loss = next(model.training_steps(batch, 0)).loss  # the teachers' stage
    expected = sum(
        ce(t.head(t.encoder(batch[m])), batch.targets) for m, t in model.teachers.items()
    )
    assert teacher_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    model.set_stage(model.stages()[1])
    out = model(batch)
    distill = sum(
        ((out["features"][m] - t.encoder(batch[m])) ** 2).mean() for m, t in model.teachers.items()
    )
    loss = next(model.training_steps(batch, 0)).loss
    assert float(loss) == pytest.approx(float(ce(out["scores"], batch.targets) + 2.5 * distill))
    with pytest.raises(Exception, match="umt_teacher_epochs"):
        make_trainer(str(tmp_path / "bad"), *UMT, "model_config.umt.umt_teacher_epochs=0")


def test_ume_predicts_by_its_average(tmp_path):
    logits = make_trainer(str(tmp_path / "l"), "model=ume", *TINY)
    batch = logits.ctx.to_device(next(iter(logits.ctx.train_loader)))
    out = logits.model(batch)
    uni = out["modality_scores"]
    assert torch.allclose(out["scores"], (uni["strong"] + uni["weak"]) / 2)
    probs = make_trainer(
        str(tmp_path / "p"), "model=ume", *TINY, "model_config.ume.ume_average=probabilities"
    )
    probs.model.load_state_dict(logits.model.state_dict())
    mean = (torch.softmax(uni["strong"], 1) + torch.softmax(uni["weak"], 1)) / 2
    assert torch.allclose(probs.model(batch)["scores"].exp(), mean, atol=1e-6)
