"""MMF's own hateful_memes builder (rc10 wheel) feeding the plugin's trainer, on a tiny
fixture in MMF's on-disk layout: <data_dir>/datasets/hateful_memes/defaults/
{annotations/<split>.jsonl, images/img/<id>.png}."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.support import REPO, make_trainer, read_metrics

CONFIG = "projects/mla/configs/hateful_memes.yaml"
SPLITS = {"train": "train.jsonl", "val": "dev_unseen.jsonl", "test": "test_unseen.jsonl"}
WORDS = {0: ["love", "sunny", "friends"], 1: ["hate", "awful", "angry"]}
QUICK = ["training.max_epochs=2", "training.batch_size=8", "training.log_interval=0"]
# tiny encoders: a 1-layer BERT on the bridge's 109-entry vocabulary, a small CNN on 16x16
# images (the project config's ResNet-18 costs most of a minute on a loaded machine)
TINY_YAML = f"""
includes:
  - {os.path.join(REPO, "projects/mla/configs/defaults.yaml")}
model: mla
datasets: hateful_memes
multimodal:
  modalities: [text, image]
  num_classes: 2
  encoders:
    text:
      type: bert
      fields: [input_ids, input_mask, segment_ids]
      params: {{out_dim: 16, vocab_size: 128, hidden_size: 16, num_layers: 1, num_heads: 2,
               intermediate_size: 32, max_position: 32}}
    image: {{type: conv, fields: [image], params: {{in_channels: 3, out_dim: 16, width: 4}}}}
dataset_config:
  hateful_memes:
    processors:
      text_processor:
        params: {{max_seq_length: 16}}
      image_processor:
        params:
          transforms:
            - {{type: Resize, params: {{size: [16, 16]}}}}
            - ToTensor
"""


def tiny_config(tmp_path):
    path = tmp_path / "hm_tiny.yaml"
    path.write_text(TINY_YAML)
    return str(path)


def write_fixture(root, sizes=(24, 8, 8)):
    """MMF's layout under ``root`` (env.data_dir); labels alternate, the image's colour
    and the text's words follow the label."""
    base = os.path.join(root, "datasets", "hateful_memes", "defaults")
    os.makedirs(os.path.join(base, "annotations"))
    os.makedirs(os.path.join(base, "images", "img"))
    rng = np.random.default_rng(0)
    next_id = 10000
    for (_, name), n in zip(SPLITS.items(), sizes, strict=True):
        with open(os.path.join(base, "annotations", name), "w") as f:
            for i in range(n):
                label, next_id = i % 2, next_id + 1
                img = f"img/{next_id}.png"
                pixels = rng.integers(0, 80, (20, 20, 3)) + (150 if label else 0)
                Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(base, "images", img))
                text = " ".join(rng.choice(WORDS[label], 3))
                f.write(json.dumps({"id": next_id, "img": img, "label": label, "text": text}))
                f.write("\n")
    return base


def test_mla_trains_through_mmfs_builder(tmp_path):
    """MLA on MMF's hateful_memes builder: text from bert_tokenizer's input_ids/input_mask/
    segment_ids, image from torchvision_transforms; metrics.json has MMF's ROC-AUC."""
    write_fixture(str(tmp_path / "data"))
    save = str(tmp_path / "save")
    data = f"env.data_dir={tmp_path / 'data'}"
    trainer = make_trainer(save, data, *QUICK, config=tiny_config(tmp_path))
    from mmf.datasets.builders.hateful_memes.builder import HatefulMemesBuilder

    assert isinstance(trainer.builder_cls(), HatefulMemesBuilder)
    batch = next(iter(trainer.ctx.train_loader))
    assert list(batch.input_ids.shape) == [8, 16] and list(batch.image.shape) == [8, 3, 16, 16]
    trainer.train()
    m = read_metrics(save)
    assert m["dataset"] == "hateful_memes" and m["modalities"] == ["text", "image"]
    for split in ("val", "test"):
        assert 0.0 <= m[split]["multi"] <= 1.0
        auc = m["roc_auc"][split]
        assert set(auc) == {"multi", "text", "image"}
        assert all(0.0 <= v <= 1.0 for v in auc.values()), auc


def test_missing_data_names_the_expected_folder(tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as e:  # the bridge's check (it is no DataError)
        make_trainer(str(tmp_path / "save"), f"env.data_dir={empty}", *QUICK, config=CONFIG)
    msg = str(e.value)
    assert os.path.join(str(empty), "datasets", "hateful_memes", "defaults") in msg
    assert "annotations/train.jsonl" in msg and "nothing is downloaded" in msg
