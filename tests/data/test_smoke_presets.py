"""The CPU smoke presets (projects/mla/configs/<dataset>_smoke.yaml) train on the tiny
owners'-layout fixtures the data tests build, and ``dataset_config.<name>.limit`` keeps an
evenly spread subset of each split."""

import os
import stat
import sys

import pytest

from mla_plugin.data.errors import DataError
from mla_plugin.data.record import limit_records
from tests.data.test_cremad import make_cremad
from tests.data.test_food101 import make_upmc
from tests.data.test_iemocap import make_iemocap
from tests.data.test_ks import FAKE_FFMPEG, make_ks
from tests.data.test_mvsa import make_mvsa
from tests.support import read_metrics, run_cli


def _cremad(tmp):
    make_cremad(tmp / "CREMA-D", tmp / "frames")
    return [f"data_dir={tmp / 'CREMA-D'}", f"frames_dir={tmp / 'frames'}"], {}


def _ks(tmp):
    make_ks(tmp / "ks")
    exe = tmp / "bin" / "ffmpeg"
    exe.parent.mkdir()
    exe.write_text(FAKE_FFMPEG.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return [f"data_dir={tmp / 'ks'}"], {"MLA_FFMPEG": str(exe)}


def _food101(tmp):
    return [f"data_dir={make_upmc(tmp / 'food101')}", "tokenizer=no-local-tokenizer"], {}


def _mvsa(tmp):
    return [f"data_dir={make_mvsa(tmp / 'MVSA_Single')}", "tokenizer=no-local-tokenizer"], {}


def _iemocap(tmp):
    make_iemocap(tmp / "IEMOCAP", tmp / "faces")
    keys = [f"data_dir={tmp / 'IEMOCAP'}", f"faces_dir={tmp / 'faces'}"]
    return keys + ["tokenizer=no-local-tokenizer"], {}


FIXTURES = {"cremad": _cremad, "ks": _ks, "food101": _food101, "mvsa": _mvsa, "iemocap": _iemocap}


@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(FIXTURES))
def test_smoke_preset_trains_on_the_fixture(name, tmp_path):
    keys, env = FIXTURES[name](tmp_path)
    save = tmp_path / "save"
    config = f"projects/mla/configs/{name}_smoke.yaml"
    assert os.path.exists(os.path.join(os.path.dirname(__file__), "..", "..", config))
    # limit=8 (the presets keep 32): fewer files to preprocess, and the key is exercised
    keys += [f"cache_dir={tmp_path / 'cache'}", "limit=8"]
    opts = [f"dataset_config.{name}.{k}" for k in keys]
    proc = run_cli("mmf_run", [f"config={config}", f"env.save_dir={save}", *opts], **env)
    assert "epoch 2/2" in proc.stdout
    m = read_metrics(save)
    assert m["dataset"] == name and m["method"] == "mla"
    assert all(m["majority"][s]["samples"] <= 8 for s in ("val", "test"))
    assert all(v is None or 0.0 <= v <= 1.0 for v in m["test"].values())


def test_limit_keeps_an_evenly_spread_subset_in_order():
    records = [f"class{i // 10}_clip{i % 10}" for i in range(40)]  # sorted by class
    kept = limit_records(records, 8, "cremad")
    assert kept == [records[i] for i in (0, 5, 10, 15, 20, 25, 30, 35)]
    assert {r.split("_")[0] for r in kept} == {"class0", "class1", "class2", "class3"}
    assert limit_records(records[:3], 8, "cremad") == records[:3]
    for bad in (0, -1, 2.5, "32", True):
        with pytest.raises(DataError, match=r"dataset_config.cremad.limit must be a positive"):
            limit_records(records, bad, "cremad")


def test_conv_encoder_on_video_frames_averages_the_per_frame_features():
    import torch

    from mla_plugin.core.encoders import ConvEncoder

    torch.manual_seed(0)
    enc = ConvEncoder(in_channels=3, out_dim=8, width=4, frames=True).eval()
    video = torch.randn(2, 3, 3, 8, 8)  # [B, T, C, H, W]
    per_frame = torch.stack([enc.net(video[:, t]).flatten(1) for t in range(3)], 1)
    torch.testing.assert_close(enc(video), per_frame.mean(1))
    assert enc(video).shape == (2, 8)
