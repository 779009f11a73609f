"""A full disk is one error naming the file, which checkpoint is intact and how to resume
(mla_plugin/utils/io.py::WriteError, trainers/checkpointing.py::write_failed).  The disk
is a real one: a tmpfs of a few hundred KiB mounted for the test (root, as the project's
machines and CI run the tests)."""

import errno
import os
import shutil
import subprocess

import pytest
import torch

from mla_plugin.utils.io import TEMP_PREFIX, WriteError, atomic_write, atomic_write_text
from tests.support import make_trainer

TINY = [
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=32",
    "dataset_config.synthetic.sizes.test=32",
    "dataset_config.synthetic.num_classes=4",
    "training.batch_size=16",
    # wider encoders, so that the checkpoints outweigh the logs and small files
    "multimodal.encoders.strong.params.hidden=256",
    "multimodal.encoders.weak.params.hidden=256",
]
PAGE = 4096  # tmpfs counts whole pages


@pytest.fixture
def small_disk(tmp_path):
    """``mount(size_bytes)`` -> the path of a fresh tmpfs of that size (unmounted after)."""
    mounted = []

    def mount(size: int) -> str:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            pytest.fail(
                f"{' '.join(cmd)} failed ({proc.stderr.strip()}): this test fills a small "
                "tmpfs, which needs root (or CAP_SYS_ADMIN); run it as root, as CI does"
            )
        mounted.append(path)
        return str(path)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_names_the_path_keeps_the_old_file_and_leaves_no_temporary(small_disk):
    disk = small_disk(256 * 1024)
    path = os.path.join(disk, "current.ckpt")
    atomic_write_text("the earlier checkpoint", path)
    with pytest.raises(WriteError) as e:  # 1 MiB of zeros into 256 KiB
        atomic_write(path, lambda f: torch.save(torch.zeros(256 * 1024), f))
    assert e.value.errno == errno.ENOSPC
    assert str(e.value) == (
        f"[Errno {errno.ENOSPC}] cannot write {path}: No space left on device (free space "
        f"on the filesystem of {disk}, e.g. see df) (the previous file there is intact)"
    )
    # one error: not torch's zip-writer RuntimeError raised while handling the OSError
    assert e.value.__suppress_context__ and e.value.__cause__ is None
    assert open(path).read() == "the earlier checkpoint"
    assert not [n for n in os.listdir(disk) if n.startswith(TEMP_PREFIX)]


def test_a_run_that_fills_the_disk_says_which_checkpoint_to_resume_and_resumes(
    tmp_path, small_disk
):
    # the sizes of this run's files, measured on a normal disk
    probe = str(tmp_path / "probe")
    make_trainer(probe, *TINY, "training.max_epochs=1").train()
    size, small = {}, 0
    for folder, _, names in os.walk(probe):
        for name in names:
            pages = -(-os.path.getsize(os.path.join(folder, name)) // PAGE)
            size[name] = pages * PAGE
            if not name.endswith((".ckpt", ".pth")):
                small += pages * PAGE
    # room for epoch 1 (best.ckpt, current.ckpt, the small files, 16 pages to spare) but
    # not for epoch 2's best.ckpt written beside them (an atomic write needs the new
    # copy's room first)
    room = size["best.ckpt"] + size["current.ckpt"] + small + 16 * PAGE
    assert room < 2 * size["best.ckpt"] + size["current.ckpt"], size
    run = os.path.join(small_disk(room), "run")
    trainer = make_trainer(run, *TINY, "training.max_epochs=3")
    with pytest.raises(WriteError) as e:
        trainer.train()
    current = os.path.join(run, "current.ckpt")
    assert e.value.errno == errno.ENOSPC
    message = str(e.value)
    assert message.startswith(f"[Errno {errno.ENOSPC}] cannot write {run}/best.ckpt: No space")
    assert message.endswith(
        f"the earlier checkpoint {current} (epoch 1, batch 0, update 8) is intact: free "
        "space, then run the same command with checkpoint.resume=True to continue from it"
    )  # epoch 1: 4 batches of MLA's 2 modality steps
    assert e.value.__suppress_context__ and e.value.__cause__ is None
    assert not os.path.exists(os.path.join(run, "metrics.json"))
    # the message holds: the run resumes from that checkpoint once there is room
    roomy = str(tmp_path / "roomy")
    shutil.copytree(run, roomy)
    resumed = make_trainer(roomy, *TINY, "training.max_epochs=3", "checkpoint.resume=True")
    assert (resumed.ctx.epoch, resumed.ctx.num_updates) == (1, 8)
    resumed.train()
    assert os.path.isfile(os.path.join(roomy, "metrics.json"))
