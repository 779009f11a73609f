"""Each fix that makes mmf 1.0.0rc10 run on Python 3.11, torch 2.x, transformers 5 and
omegaconf 2.4, as one named unit.  ``docs/bridge.md`` explains each and when to drop it.

A fix is either a source rewrite, applied to MMF's own modules as they are imported, or
a module fix, a function run on one MMF module right after it executes.  Nothing here
changes another library's behaviour for the process.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mla_bridge import BRIDGE_DIR
from mla_bridge.finder import MMFPatchFinder


@dataclass
class Fix:
    name: str
    why: str
    rewrites: list[tuple[str, str, str]] = field(default_factory=list)  # (module prefix, old, new)
    module_fixes: list[tuple[str, Callable]] = field(default_factory=list)  # (module, fn)

    def register(self, finder: MMFPatchFinder) -> None:
        for prefix, old, new in self.rewrites:
            finder.add_rewrite(
                self.name, lambda n, p=prefix: n == p or n.startswith(p + "."), old, new
            )
        for module, fn in self.module_fixes:
            finder.add_module_fix(module, fn)


def _default_config_path(module):
    module.get_default_config_path = lambda: os.path.join(BRIDGE_DIR, "defaults.yaml")


def _checked_set_seed(module):
    from mla_bridge.runtime import checked_set_seed

    checked_set_seed(module)


def _bridge_models(fn_name):
    def fix(module):
        from mla_bridge import models

        getattr(models, fn_name)(module)

    return fix


def _config_only_command_line(module):
    from mla_bridge.runtime import config_only_command_line

    config_only_command_line(module.Configuration)


def _bridge_resolver(module):
    from mla_bridge.runtime import register_bridge_resolver

    register_bridge_resolver(module.Configuration)


def _hateful_memes_config(module):
    from mla_bridge.runtime import supply_dataset_config

    supply_dataset_config("hateful_memes", module.HatefulMemesBuilder)


FIXES = [
    Fix(
        "demjson",
        "demjson 2.2.4 cannot be built on Python 3.11; MMF uses only demjson.decode "
        "for --config_override",
        rewrites=[
            (
                "mmf.utils.configuration",
                "import demjson\n",
                "from mla_bridge.shims import demjson\n",
            )
        ],
    ),
    Fix(
        "torchtext_vocab",
        "torchtext.vocab (imported at start-up by mmf.utils.vocab) no longer exists",
        rewrites=[
            (
                "mmf.utils.vocab",
                "from torchtext import vocab\n",
                "from mla_bridge.shims import torchtext_vocab as vocab\n",
            )
        ],
    ),
    Fix(
        "lazy_lmdb",
        "lmdb is imported at start-up but only used to read .lmdb feature files",
        rewrites=[
            (
                "mmf.datasets.databases.readers.feature_readers",
                "import lmdb\n",
                "from mla_bridge.shims import lmdb\n",
            )
        ],
    ),
    Fix(
        "transformers_paths",
        "transformers 4 moved modeling_bert/*_auto under transformers.models and removed "
        "BertLayerNorm; transformers 5 removed AdamW (torch.optim.AdamW replaces it)",
        rewrites=[
            (
                "mmf",
                "from transformers.modeling_bert import",
                "from mla_bridge.legacy_transformers import",
            ),
            ("mmf", "from transformers.configuration_bert import", "from transformers import"),
            ("mmf", "from transformers.configuration_auto import", "from transformers import"),
            ("mmf", "from transformers.modeling_auto import", "from transformers import"),
            ("mmf", "from transformers.tokenization_auto import", "from transformers import"),
            ("mmf", "from transformers.optimization import AdamW", "from torch.optim import AdamW"),
        ],
    ),
    Fix(
        "collections_abc",
        "collections.Mapping was removed in Python 3.10",
        rewrites=[("mmf.utils.logger", "collections.Mapping", "collections.abc.Mapping")],
    ),
    Fix(
        "omegaconf_pretty",
        "DictConfig.pretty() was removed in omegaconf 2.1",
        rewrites=[
            (
                "mmf.utils.checkpoint",
                "self.config.pretty(resolve=True)",
                "OmegaConf.to_yaml(self.config, resolve=True)",
            )
        ],
    ),
    Fix(
        "default_config",
        "the rc10 wheel ships no mmf/configs/defaults.yaml; use the bridge's own",
        module_fixes=[("mmf.utils.configuration", _default_config_path)],
    ),
    Fix(
        "config_only_command_line",
        "rc10 demands model= and dataset= on the command line; take them from the "
        "config file when absent there (command-line values still win)",
        module_fixes=[("mmf.utils.configuration", _config_only_command_line)],
    ),
    Fix(
        "seed_check",
        "rc10's set_seed hands training.seed to numpy unchecked: training.seed=abc fails "
        "with a numpy casting error; name the key instead",
        module_fixes=[("mmf.utils.env", _checked_set_seed)],
    ),
    Fix(
        "yaml_literals_on_command_line",
        "rc10 decodes command-line values with literal_eval, so true/false/null (YAML's "
        "spellings, which mmf_predict itself passes) stay strings and 'false' is truthy",
        rewrites=[
            (
                "mmf.utils.configuration",
                '        if value == "None":\n            value = None\n',
                '        if value in ("None", "null", "true", "false"):\n'
                '            return {"true": True, "false": False}.get(value)\n',
            )
        ],
    ),
    Fix(
        "zoo_version_text",
        "omegaconf 2.4 reads the zoo version 1.0_2020_10_01 as a float, which never equals "
        "the text in .built.json, so MMF downloads data that is present; and the wheel "
        "ships no zoo (configs/zoo/datasets.yaml)",
        rewrites=[
            (
                "mmf.utils.configuration",
                "zoo = load_yaml(zoo_config_path)",
                'zoo = __import__("mla_bridge.runtime").runtime.load_zoo('
                "zoo_config_path, zoo_type)",
            )
        ],
    ),
    Fix(
        "dataset_configs",
        "the wheel ships no dataset configs: hateful_memes gets the bridge's (bert_tokenizer "
        "with a local vocabulary, torchvision transforms), and a check naming the expected "
        "folder in place of an assert pointing at a download page",
        module_fixes=[
            ("mmf.utils.configuration", _bridge_resolver),
            ("mmf.datasets.builders.hateful_memes.builder", _hateful_memes_config),
        ],
    ),
    Fix(
        "cpu_distributed",
        "rc10's distributed init assumes CUDA (NCCL and a CUDA all-reduce); use gloo on the CPU",
        rewrites=[
            (
                "mmf.utils.distributed",
                "backend=config.distributed.backend,",
                'backend=config.distributed.backend if torch.cuda.is_available() else "gloo",',
            ),
            (
                "mmf.utils.distributed",
                "dist.all_reduce(torch.zeros(1).cuda())",
                'dist.all_reduce(torch.zeros(1, device="cuda" if torch.cuda.is_available() else "cpu"))',
            ),
        ],
    ),
    Fix(
        "torchrun_launch",
        "rc10 predates torchrun: read RANK/WORLD_SIZE/LOCAL_RANK from its environment",
        rewrites=[
            (
                "mmf_cli.run",
                "distributed_main(0, configuration, predict)",
                'distributed_main(__import__("mla_bridge.runtime").runtime.local_rank(), '
                "configuration, predict)",
            )
        ],
    ),
    Fix(
        "destroy_process_group",
        "rc10 never destroys its process group: a process that exits with gloo's worker "
        "threads alive can abort in the interpreter's finalization (\"terminate called "
        "without an active exception\", torch's c10d shutdown docs); a run that ended "
        "normally now destroys it",
        rewrites=[
            (
                "mmf_cli.run",
                "    if predict:\n        trainer.inference()\n    else:\n        trainer.train()\n",
                "    if predict:\n        trainer.inference()\n    else:\n        trainer.train()\n"
                "    if init_distributed and torch.distributed.is_initialized():\n"
                "        torch.distributed.destroy_process_group()\n",
            )
        ],
    ),
    Fix(
        "model_configs",
        "the rc10 wheel ships no model configs; MMF's concat_bow, concat_bert, late_fusion, "
        "unimodal_text, unimodal_image and mmbt read the bridge's (mla_bridge/configs/models)",
        module_fixes=[
            (m, _bridge_models("use_bridge_model_configs"))
            for m in ("mmf.models.fusions", "mmf.models.unimodal", "mmf.models.mmbt")
        ],
    ),
    Fix(
        "bert_random_init",
        "rc10's TransformerEncoder always loads a pretrained BERT (a download); "
        "text_encoder.params.random_init: true builds one of the configured sizes instead",
        module_fixes=[("mmf.modules.encoders", _bridge_models("bert_random_init"))],
    ),
    Fix(
        "pooled_output_batch_of_two",
        "rc10's fusion and unimodal models take x[1] of an encoder output whose len is 2, "
        "meant for BERT's (sequence, pooled) pair: a feature tensor of batch size 2 lost "
        "its batch dimension",
        rewrites=[
            (
                "mmf.models.fusions",
                "if len(text) == 2:",
                "if not torch.is_tensor(text) and len(text) == 2:",
            ),
            (
                "mmf.models.unimodal",
                "if len(x) == 2:",
                "if not torch.is_tensor(x) and len(x) == 2:",
            ),
        ],
    ),
]


def enabled_fixes() -> list[Fix]:
    """All fixes, less those named in MLA_BRIDGE_DISABLE (comma-separated; for tests)."""
    disabled = {n for n in os.environ.get("MLA_BRIDGE_DISABLE", "").split(",") if n}
    unknown = disabled - {f.name for f in FIXES}
    if unknown:
        raise ValueError(
            f"MLA_BRIDGE_DISABLE names unknown fixes: {sorted(unknown)}; "
            f"valid: {[f.name for f in FIXES]}"
        )
    return [f for f in FIXES if f.name not in disabled]
