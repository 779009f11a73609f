"""torchrun with 2 gloo ranks on the CPU: ranks stay in sync, MLA's projector P is
identical on both and equal to a 1-process run on the same global batch."""

import os

import pytest
import torch

from tests.support import BIN, QUICK, SYNTHETIC, read_metrics, run_cli

pytestmark = [pytest.mark.subprocess, pytest.mark.distributed]

TORCHRUN = ["--standalone", "--nproc_per_node", "2", os.path.join(BIN, "mmf_run")]


def _args(save_dir):
    return [f"config={SYNTHETIC}", f"env.save_dir={save_dir}", *QUICK]


@pytest.mark.slow
def test_two_ranks_match_one_process(tmp_path):
    single, double = str(tmp_path / "one"), str(tmp_path / "two")
    run_cli("mmf_run", _args(single))
    run_cli("torchrun", TORCHRUN + _args(double), timeout=600)
    m1, m2 = read_metrics(single), read_metrics(double)
    assert m2["world_size"] == 2 and m2["ranks_in_sync"] is True
    c1 = torch.load(os.path.join(single, "current.ckpt"), weights_only=False)
    c2 = torch.load(os.path.join(double, "current.ckpt"), weights_only=False)
    p1, p2 = c1["hooks"]["hgm"]["projector"]["P"], c2["hooks"]["hgm"]["projector"]["P"]
    assert not torch.allclose(p1, torch.eye(p1.shape[0]))  # HGM really ran
    torch.testing.assert_close(p2, p1, rtol=1e-4, atol=1e-5)
    for k, v in c1["model"].items():
        torch.testing.assert_close(c2["model"][k], v, rtol=1e-4, atol=1e-5)
    assert m1["test"] == m2["test"]


def test_cpu_distributed_fix_is_needed(tmp_path):
    proc = run_cli(
        "torchrun",
        TORCHRUN + _args(str(tmp_path / "off")),
        timeout=600,
        check=False,
        disable="cpu_distributed",
    )
    assert proc.returncode != 0
