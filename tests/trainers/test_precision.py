"""The trainer's precision (fp32 | bf16 | fp16 + GradScaler), channels_last, progress bar
and log lines, in-process on tiny synthetic runs (CPU autocast covers bf16 and fp16)."""

import math
import re

import numpy as np
import pytest
import torch

from mla_plugin.core.hooks import TrainingHook
from mla_plugin.trainers.checkpointing import save_checkpoint
from tests.support import QUICK, make_trainer, read_metrics

SMALL = [*QUICK[:3], "training.max_epochs=2"]  # 8 batches of 64 per epoch


# Mixed precision against fp32 on the same seed: measured (val / test fused accuracy, 256
# samples each) fp32 .500/.484, bf16 .492/.480, fp16 .504/.480 -- one or two samples apart,
# where a run that does not learn sits at chance (about 0.1).  The bar: 8 samples (0.03).
AMP_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def fp32_metrics(tmp_path_factory):
    save = str(tmp_path_factory.mktemp("fp32") / "save")
    make_trainer(save, "training.precision=fp32", *SMALL).train()
    return read_metrics(save)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mla_trains_under_mixed_precision(precision, fp32_metrics, tmp_path):
    save = str(tmp_path / "save")
    trainer = make_trainer(save, f"training.precision={precision}", *SMALL)
    trainer.train()
    m = read_metrics(save)
    assert m["precision"] == precision and fp32_metrics["precision"] == "fp32"
    # bf16 has fp32's range, so no step overflows; fp16's scaler skipped none either here
    assert m["skipped_steps"] == 0
    for split in ("val", "test"):
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in m[split].values())
        fused, reference = m[split]["multi"], fp32_metrics[split]["multi"]
        assert abs(fused - reference) <= AMP_TOLERANCE, (split, fused, reference)
    assert fp32_metrics["val"]["multi"] > 0.3  # the reference learned: chance is about 0.1
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    with trainer.ctx.amp.autocast():  # the forwards really ran in the lower precision
        assert trainer.model(batch)["scores"].dtype == getattr(
            torch, {"bf16": "bfloat16"}.get(precision, "float16")
        )
    saved = torch.load(f"{save}/current.ckpt", weights_only=False)
    if precision == "fp16":  # the loss scale travels with the checkpoint and comes back
        assert saved["grad_scaler"]["scale"] == trainer.ctx.amp.scaler.get_scale()
        trainer.ctx.amp.scaler.update(123.0)
        save_checkpoint(trainer.ctx, "current.ckpt")
        resumed = make_trainer(save, "training.precision=fp16", *SMALL, "checkpoint.resume=True")
        assert resumed.ctx.amp.scaler.get_scale() == 123.0
    else:
        assert saved["grad_scaler"] == {} and not trainer.ctx.amp.scaler.is_enabled()


class HeadGrad(TrainingHook):
    """Records the head's gradient as the hooks after HGM see it."""

    name = "record_head_grad"

    def __init__(self, head):
        self.head, self.grads = head, []

    def on_before_optimizer_step(self, step):
        self.grads.append(self.head.weight.grad.detach().clone())


def _one_batch(tmp_path, name, scale=None, poison=False):
    """One MLA batch (two modality steps: the first plain, the second projected by HGM)
    with fp32 forwards; ``scale``: the loss scaled by it through an fp16 GradScaler;
    ``poison``: an inf in one sample's inputs (every gradient becomes inf/nan)."""
    trainer = make_trainer(str(tmp_path / name), *SMALL, "training.precision=fp16")
    trainer.ctx.amp.dtype = None  # forwards in fp32: the runs differ only in the scaling
    if scale is None:
        trainer.ctx.amp.scaler = torch.amp.GradScaler("cpu", enabled=False)
    else:
        trainer.ctx.amp.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    raw, projected = HeadGrad(trainer.model.head), HeadGrad(trainer.model.head)
    raw.name = "raw_head_grad"
    trainer.ctx.hooks = [raw, *trainer.ctx.hooks, projected]  # around HGM's hook
    trainer.ctx.train_sampler.set_epoch(0)
    batch = trainer.ctx.to_device(next(iter(trainer.ctx.train_loader)))
    if poison:
        for m in trainer.modalities:
            batch[m][0, 0] = math.inf
    trainer.train_batch(batch)
    trainer.ctx.hooks = trainer.ctx.hooks[1:-1]
    return trainer, raw.grads, projected.grads


def test_hgm_projects_the_unscaled_gradient(tmp_path):
    """With a loss scale of 2^14 the hooks see the same gradient as an unscaled run (the
    scaler unscales before them): the plain first step's and HGM's projection in the
    second; and training ends in the same place.  Fails if unscale_ follows the hooks."""
    plain, plain_raw, plain_grads = _one_batch(tmp_path, "plain")
    scaled, scaled_raw, scaled_grads = _one_batch(tmp_path, "scaled", scale=2.0**14)
    assert len(plain_grads) == len(scaled_grads) == 2 and scaled.ctx.skipped_steps == 0
    hgm = scaled.hooks[0]
    assert hgm.name == "hgm" and hgm.modality_steps == 2
    # the first step is plain, the second one's gradient is projected (changed)
    torch.testing.assert_close(plain_grads[0], plain_raw[0])
    assert (plain_grads[1] - plain_raw[1]).abs().max() > 1e-4 * plain_raw[1].abs().max()
    for a, b in zip(plain_raw + plain_grads, scaled_raw + scaled_grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(hgm.projector.P, plain.hooks[0].projector.P)
    for p, q in zip(scaled.model.parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_a_skipped_fp16_step_changes_neither_weights_nor_p(tmp_path):
    """inf/nan gradients (an inf input): the scaler skips both steps, HGM leaves P and
    its step count alone, and the scale backs off twice."""
    trainer, _, grads = _one_batch(tmp_path, "inf", scale=2.0**14, poison=True)
    before = make_trainer(str(tmp_path / "ref"), *SMALL).model.state_dict()
    assert trainer.ctx.skipped_steps == 2 and all(not torch.isfinite(g).all() for g in grads)
    hgm = trainer.hooks[0]
    assert hgm.modality_steps == 0
    torch.testing.assert_close(hgm.projector.P, torch.eye(hgm.projector.P.shape[0]))
    for k, v in trainer.model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, before[k], msg=k)
    assert trainer.ctx.amp.scaler.get_scale() == 2.0**12


@pytest.mark.parametrize(
    "opts, message",
    [
        (["training.precision=fp8"], r"training.precision: 'fp8' is not one of"),
        (
            ["training.precision=bf16", "training.fp16=True"],
            r"training.fp16: true .* disagrees with training.precision: bf16",
        ),
        (["training.progress_bar=sometimes"], r"training.progress_bar: 'sometimes'"),
        (["training.channels_last=1"], r"training.channels_last: 1 must be a bool"),
    ],
)
def test_bad_loop_options_are_refused_naming_the_key(opts, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        make_trainer(str(tmp_path), *opts)


def test_mmf_fp16_switch_means_fp16(tmp_path):
    trainer = make_trainer(str(tmp_path), "training.fp16=True")
    assert trainer.ctx.precision == "fp16" and trainer.ctx.amp.scaler.is_enabled()


def _image_features(root):
    """A features directory with an 8x8 one-channel image modality and a vector one."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("test", 48)):
        y = rng.integers(0, 3, n)
        img = rng.normal(size=(n, 1, 8, 8)).astype(np.float32) + y[:, None, None, None]
        vec = rng.normal(size=(n, 4)).astype(np.float32)
        np.savez(root / f"{split}.npz", y=y, x_img=img, x_vec=vec)


def test_channels_last_conv_encoder_trains(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _image_features(data)
    config = tmp_path / "exp.yaml"
    config.write_text(
        "includes:\n  - {repo}/projects/mla/configs/features.yaml\n"
        "multimodal:\n  encoders:\n"
        "    img: {{type: conv, params: {{in_channels: 1, out_dim: 16, width: 4}}}}\n"
        "    vec: {{type: mlp, params: {{in_dim: auto, out_dim: 16, hidden: 16, layers: 2}}}}\n".format(
            repo=__import__("tests.support").support.REPO
        )
    )
    save = str(tmp_path / "save")
    trainer = make_trainer(
        save,
        f"dataset_config.features.data_dir={data}",
        "training.channels_last=True",
        "training.batch_size=32",
        "training.max_epochs=1",
        config=str(config),
    )
    conv = trainer.model.encoders["img"].net[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    trainer.train()
    m = read_metrics(save)
    assert seen and all(seen)  # every conv input was channels_last
    assert all(math.isfinite(v) for v in m["test"].values() if v is not None)


def _logged(trainer):
    lines = []
    write = trainer.ctx.writer.write
    trainer.ctx.writer.write = lambda msg, *a, **k: (lines.append(msg), write(msg, *a, **k))
    return lines


@pytest.mark.parametrize("model, updates_per_batch", [("mla", 2), ("concat", 1)])
def test_log_interval_lines(model, updates_per_batch, tmp_path, capsys):
    """log_interval=3: one line per 3 updates (MLA takes 2 per batch, concat 1), each with
    a loss and samples/s; the progress bar is forced on (it writes to stderr)."""
    trainer = make_trainer(
        str(tmp_path),
        f"model={model}",
        *SMALL,
        "training.log_interval=3",
        "training.progress_bar=True",
    )
    lines = _logged(trainer)
    for _ in range(2):  # the two epochs' training alone (no evaluation)
        trainer.train_epoch()
    total = 2 * trainer.ctx.num_batches * updates_per_batch
    pattern = re.compile(rf"^update (\d+)/{total} epoch [12] loss ([0-9.]+) samples/s ([0-9.]+)$")
    found = [pattern.match(line) for line in lines if line.startswith("update ")]
    assert len(found) == total // 3 and all(found)
    assert all(float(f[2]) > 0 and float(f[3]) > 0 for f in found)
    # the bar of each epoch, with its total (how often tqdm redraws depends on time, so
    # only its first frame, drawn at once, is certain)
    err = capsys.readouterr().err
    for epoch in (1, 2):
        assert f"epoch {epoch}/2:   0%|" in err and f"0/{trainer.ctx.num_batches} [" in err


def test_progress_bar_auto_is_off_without_a_terminal(tmp_path, capsys):
    trainer = make_trainer(str(tmp_path), *SMALL, "training.max_epochs=1")
    progress = next(c for c in trainer.ctx.callbacks if c.name == "progress")
    assert not progress.show  # pytest's stdout is not a terminal
    trainer.train_epoch()
    assert f"/{trainer.ctx.num_batches} [" not in capsys.readouterr().err
