"""A test-only dataset whose samples carry the fields MMF's own models read, as MMF's
processors make them: ``text`` (token ids, for bag-of-words), ``input_ids``,
``input_mask`` and ``segment_ids`` (as ``bert_tokenizer`` gives), ``image`` ([N, D]
grid features, for image encoders of type ``default``), plus the plugin's ``mask``,
``targets`` and ``index``.  Registered as the builder ``mmf_fields``; class-dependent
tokens and feature means make both modalities informative.  Tiny on purpose."""

import os
import textwrap

import torch
from mmf.common.registry import registry

from mla_plugin.builders.base import MultimodalBuilder
from tests.support import REPO

LENGTH, VOCAB, GRID, DIM, CLASSES = 8, 40, 2, 8, 2


class MMFFieldsReader:
    modalities = ["text", "image"]
    num_classes = CLASSES

    def __init__(self, split, size, seed):
        g = torch.Generator().manual_seed(seed + {"train": 0, "val": 1, "test": 2}[split])
        self.targets = torch.randint(0, CLASSES, (size,), generator=g)
        # text: half the tokens from the class's own half of the vocabulary
        own = 2 + self.targets[:, None] * (VOCAB - 2) // 2
        own = own + torch.randint(0, (VOCAB - 2) // 2, (size, LENGTH), generator=g)
        noise = torch.randint(2, VOCAB, (size, LENGTH), generator=g)
        keep = torch.rand(size, LENGTH, generator=g) < 0.5
        self.ids = torch.where(keep, own, noise)
        self.ids[:, 0] = 1  # a [CLS]-like first token
        means = torch.randn(CLASSES, GRID, DIM, generator=torch.Generator().manual_seed(seed))
        self.image = means[self.targets] + torch.randn(size, GRID, DIM, generator=g)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        ids = self.ids[i]
        return {
            "inputs": {
                "text": ids,
                "input_ids": ids,
                "input_mask": torch.ones(LENGTH, dtype=torch.long),
                "segment_ids": torch.zeros(LENGTH, dtype=torch.long),
                "image": self.image[i],
            },
            "mask": torch.ones(2, dtype=torch.bool),
            "targets": self.targets[i],
            "index": torch.tensor(i),
        }


@registry.register_builder("mmf_fields")
class MMFFieldsBuilder(MultimodalBuilder):
    NAME = "mmf_fields"

    def __init__(self):
        super().__init__(self.NAME)

    @classmethod
    def config_path(cls):
        return None  # the experiment config below holds dataset_config.mmf_fields

    def make_reader(self, config, dataset_type):
        return MMFFieldsReader(dataset_type, int(config.sizes[dataset_type]), int(config.seed))


TINY_BERT = {
    "random_init": True,
    "vocab_size": VOCAB,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}
TINY_IMAGE = {"type": "default", "params": {"in_dim": DIM, "num_output_features": GRID}}


def tiny_model_overrides(model: str) -> list[str]:
    """Command-line overrides that shrink the bridge's config of MMF ``model`` to this
    data: a 1-layer BERT of width 16 (random init), the identity image encoder on the
    [GRID, DIM] features, a bag of words of width 16, two classes."""
    at = f"model_config.{model}"
    out = []
    if model != "unimodal_image":
        if model == "concat_bow":
            out += [
                f"{at}.text_encoder.params.embedding_params.params.vocab_size={VOCAB}",
                f"{at}.text_encoder.params.embedding_params.params.embedding_dim=16",
            ]
        else:
            out += [f"{at}.text_encoder.params.{k}={v}" for k, v in TINY_BERT.items()]
        if model != "mmbt":
            out.append(f"{at}.text_hidden_size=16")
    if model != "unimodal_text":
        out += [f"{at}.modal_encoder.type=default", f"{at}.modal_hidden_size={DIM}"]
        out += [f"{at}.modal_encoder.params.{k}={v}" for k, v in TINY_IMAGE["params"].items()]
    return out


def write_config(path, sizes=(64, 32, 32), epochs=2, batch=16) -> str:
    """An experiment config of ``mmf_fields`` for MMF's models (SGD from the project's
    defaults)."""
    train, val, test = sizes
    with open(path, "w") as f:
        f.write(
            textwrap.dedent(f"""\
            includes:
              - {os.path.join(REPO, "projects/mla/configs/defaults.yaml")}
            model: concat_bow
            datasets: mmf_fields
            dataset_config:
              mmf_fields:
                sizes: {{train: {train}, val: {val}, test: {test}}}
                seed: 0
                train_mask: null
            training:
              max_epochs: {epochs}
              batch_size: {batch}
            """)
        )
    return str(path)


def measure(out_dir, models, sizes=(512, 128, 256), epochs=5, lr=0.05):
    """Train each of MMF's ``models`` on this data (in process, tiny sizes) and return
    ``(model, test fused accuracy, test majority rate, parameters, seconds)`` rows."""
    import time

    from tests.support import make_trainer, read_metrics

    config = write_config(os.path.join(out_dir, "mmf_fields.yaml"), sizes, epochs, batch=32)
    rows = []
    for model in models:
        start, save_dir = time.perf_counter(), os.path.join(out_dir, model)
        trainer = make_trainer(
            save_dir,
            f"model={model}",
            f"optimizer.params.lr={lr}",
            *tiny_model_overrides(model),
            config=config,
        )
        trainer.train()
        m = read_metrics(save_dir)
        params = sum(p.numel() for p in trainer.model.parameters())
        rate = m["majority"]["test"]["rate"]["multi"]
        rows.append((model, m["test"]["multi"], rate, params, time.perf_counter() - start))
    return rows


if __name__ == "__main__":  # python -m tests.models.mmf_fields OUT_DIR [MODEL ...]
    import sys

    names = sys.argv[2:] or [
        "unimodal_text",
        "unimodal_image",
        "concat_bow",
        "concat_bert",
        "late_fusion",
        "mmbt",
    ]
    print("| model | test acc | majority | parameters | seconds |\n|---|---|---|---|---|")
    for model, acc, rate, params, secs in measure(sys.argv[1], names):
        print(f"| {model} | {acc:.3f} | {rate:.3f} | {params} | {secs:.0f} |")
