"""Each bridge fix has a test that fails when that fix alone is disabled
(``MLA_BRIDGE_DISABLE=<name>``): the check runs in a fresh interpreter both ways."""

import re

import pytest

from mla_bridge.fixes import FIXES
from tests.support import QUICK, SYNTHETIC, run_cli, run_python

CHECKS = {
    "demjson": "from mmf.utils.configuration import demjson\n"
    "assert demjson.decode('{training: {batch_size: 8}}') == {'training': {'batch_size': 8}}",
    "torchtext_vocab": "import mmf.utils.vocab",
    "lazy_lmdb": "import mmf.datasets.databases.readers.feature_readers",
    "transformers_paths": "import mmf.modules.embeddings, mmf.modules.optimizers, mmf.models.vilbert",
    "collections_abc": (
        "from omegaconf import OmegaConf\n"
        "from mmf.utils.logger import Logger\n"
        "logger = Logger.__new__(Logger); logger._is_master = False; logger._logger = None\n"
        "logger.log_progress({'a': 1})"
    ),
    "omegaconf_pretty": (
        "import tempfile\n"
        "from omegaconf import OmegaConf\n"
        "from mmf.utils.checkpoint import Checkpoint\n"
        "c = Checkpoint.__new__(Checkpoint); c.config = OmegaConf.create({'a': 1})\n"
        "c.ckpt_foldername = tempfile.mkdtemp(); c.save_config()"
    ),
    "yaml_literals_on_command_line": (
        "from mmf.utils.configuration import Configuration\n"
        "decode = Configuration.__new__(Configuration)._decode_value\n"
        "assert [decode(v) for v in ('true', 'false', 'null', 'None', '3')] == "
        "[True, False, None, None, 3]"
    ),
    "default_config": (
        "from mmf.utils.configuration import Configuration\n"
        "assert Configuration().get_config().training.trainer == 'base_trainer'"
    ),
    "config_only_command_line": (
        "import argparse\n"
        "from mmf.utils.configuration import Configuration\n"
        "args = argparse.Namespace(opts=['config=projects/mla/configs/synthetic.yaml'], config_override=None)\n"
        "c = Configuration(args).get_config()\n"
        "assert c.model == 'mla' and c.datasets == 'synthetic' and 'mla' in c.model_config"
    ),
    "seed_check": (
        "from mmf.utils.env import set_seed\n"
        "assert set_seed(3) == 3\n"
        "try:\n    set_seed('abc')\n"
        "except ValueError as exc:\n    assert str(exc).startswith('training.seed:'), exc\n"
        "else:\n    raise AssertionError('no error')"
    ),
    "zoo_version_text": (
        "import json, os, tempfile\n"
        "import mmf.utils.download as d\n"
        "from mmf.utils.configuration import get_zoo_config\n"
        "root = tempfile.mkdtemp(); zoo = os.path.join(root, 'zoo.yaml')\n"
        "open(zoo, 'w').write('hateful_memes:\\n  defaults:\\n    version: 1.0_2020_10_01\\n'\n"
        "    '    resources: [{url: http://127.0.0.1:9/x.zip, file_name: x.zip}]\\n')\n"
        "json.dump({'version': '1.0_2020_10_01'}, open(os.path.join(root, '.built.json'), 'w'))\n"
        "version, resources = get_zoo_config('hateful_memes', zoo_config_path=zoo)\n"
        "d.download_resource = lambda *a: (_ for _ in ()).throw(AssertionError('downloads'))\n"
        "d.download_resources(resources, root, version)  # data present: no download\n"
        "assert get_zoo_config('hateful_memes') == (None, None)  # the bridge's zoo"
    ),
    "dataset_configs": (
        "import argparse, os, pytest\n"
        "from mmf.utils.configuration import Configuration\n"
        "args = argparse.Namespace(opts=['config=projects/mla/configs/hateful_memes.yaml', "
        "'env.data_dir=/nonexistent_hm'], config_override=None)\n"
        "c = Configuration(args).get_config()\n"
        "hm = c.dataset_config.hateful_memes\n"
        "assert os.path.isdir(hm.processors.text_processor.params.tokenizer_config.type)\n"
        "from mmf.common.registry import registry\n"
        "with pytest.raises(FileNotFoundError, match='nonexistent_hm/datasets/hateful_memes/defaults'):\n"
        "    registry.get_builder_class('hateful_memes')().build(hm)"
    ),
    "torchrun_launch": (
        "import os, sys\n"
        "os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29999', WORLD_SIZE='2', RANK='1', LOCAL_RANK='1')\n"
        "import mmf_cli.run as r\n"
        "seen = []\n"
        "r.distributed_main = lambda device_id, configuration, predict=False: seen.append(device_id)\n"
        "r.run(opts=['config=projects/mla/configs/synthetic.yaml'])\n"
        "assert seen == [1], seen"
    ),
    "destroy_process_group": (  # two ranks under torchrun (rc10 refuses one)
        "import os, subprocess, sys, tempfile\n"
        "script = tempfile.NamedTemporaryFile('w', suffix='.py', delete=False)\n"
        "script.write('import sys, torch\\nimport mmf_cli.run as r\\n'\n"
        '    \'r.run(opts=["config=projects/mla/configs/synthetic.yaml", "model=concat", \'\n'
        '    \'"training.max_epochs=1", "dataset_config.synthetic.sizes.train=32", \'\n'
        '    \'"dataset_config.synthetic.sizes.val=32", "dataset_config.synthetic.sizes.test=32", \'\n'
        "    '\"env.save_dir=\" + sys.argv[1]])\\n'\n"
        "    'assert not torch.distributed.is_initialized(), \"process group left alive\"\\n')\n"
        "script.close()\n"
        "torchrun = os.path.join(os.path.dirname(sys.executable), 'torchrun')\n"
        "p = subprocess.run([torchrun, '--standalone', '--nproc_per_node', '2', script.name, "
        "tempfile.mkdtemp()], capture_output=True, text=True, timeout=300)\n"
        "left = 'process group left alive'\n"
        "assert p.returncode == 0, left if left in p.stderr else p.stderr[-3000:]"
    ),
    "model_configs": (
        "from mmf.common.registry import registry\n"
        "from mmf.utils.configuration import load_yaml\n"
        "for m in ['concat_bow', 'concat_bert', 'late_fusion', 'unimodal_text', "
        "'unimodal_image', 'mmbt']:\n"
        "    c = load_yaml(registry.get_model_class(m).config_path())\n"
        "    assert m in c.model_config and 'protocol' not in c, m  # the plugin's section"
    ),
    "bert_random_init": (
        "from omegaconf import OmegaConf\n"
        "from mmf.modules.encoders import TransformerEncoder\n"
        "e = TransformerEncoder(OmegaConf.create({'random_init': True, "
        "'bert_model_name': '/nonexistent/bert', 'vocab_size': 40, 'hidden_size': 16, "
        "'num_hidden_layers': 1, 'num_attention_heads': 2, 'intermediate_size': 32}))\n"
        "assert e.module.config.hidden_size == 16 and len(e.module.encoder.layer) == 1"
    ),
    "pooled_output_batch_of_two": (
        "import torch\n"
        "from omegaconf import OmegaConf\n"
        "from mmf.models.fusions import FusionBase\n"
        "from mmf.models.unimodal import UnimodalBase\n"
        "text = {'type': 'identity', 'params': {}}\n"
        "image = {'type': 'default', 'params': {'in_dim': 3}}\n"
        "base = FusionBase(OmegaConf.create({'text_encoder': text, 'modal_encoder': image, "
        "'direct_features_input': False}))\n"
        "t, m = base(torch.randn(2, 5), torch.randn(2, 3))\n"
        "assert t.shape == (2, 5) and m.shape == (2, 3)\n"
        "u = UnimodalBase(OmegaConf.create({'text_encoder': text}))\n"
        "assert u(torch.randn(2, 5)).shape == (2, 5)"
    ),
}

# What each check meets with its fix disabled: the very error the fix removes (the last
# lines of its traceback), so a check broken in some other way cannot pass for one.
FAILS_WITHOUT = {
    "demjson": r"ModuleNotFoundError: No module named 'demjson'",
    "torchtext_vocab": r"ModuleNotFoundError: No module named 'torchtext'",
    "lazy_lmdb": r"ModuleNotFoundError: No module named 'lmdb'",
    "transformers_paths": r"ModuleNotFoundError: No module named 'transformers\.\w+'",
    "collections_abc": r"module 'collections' has no attribute 'Mapping'",
    "omegaconf_pretty": r"ConfigAttributeError: Missing key pretty",
    "yaml_literals_on_command_line": r"line 3, in <module>\nAssertionError\s*$",
    "default_config": r"No such file or directory: '[^']*/mmf/configs/defaults\.yaml'",
    "config_only_command_line": r"_build_model_config[\s\S]*Missing key model",
    "seed_check": r"Cannot cast scalar from dtype\('<U3'\)",
    "zoo_version_text": r"AssertionError: downloads",
    "dataset_configs": r"No such file or directory: '[^']*/datasets/hateful_memes/defaults\.yaml'",
    "torchrun_launch": r"AssertionError: \[0\]",
    "destroy_process_group": r"AssertionError: process group left alive",
    "model_configs": r"No such file or directory: '[^']*/models/fusions/concat_bow\.yaml'",
    "bert_random_init": r"Error: .*'/nonexistent/bert'",
    "pooled_output_batch_of_two": r"IndexError: Dimension out of range",
}


def test_every_fix_has_a_check():
    names = {f.name for f in FIXES}
    assert set(FAILS_WITHOUT) == set(CHECKS)
    assert names == set(CHECKS) | {
        "cpu_distributed"
    }  # cpu_distributed: tests/trainers/test_distributed.py


@pytest.mark.subprocess
def test_every_check_passes_with_the_bridge():
    """All checks in one interpreter (importing MMF costs seconds), each in its own scope."""
    code = "\n".join(f"exec({CHECKS[name]!r}, {{}})" for name in sorted(CHECKS))
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.subprocess
def test_every_check_fails_without_its_fix():
    """Each check, in its own interpreter with its fix disabled, must fail (else it proves
    nothing); the interpreters start two at a time (each is mostly one import-bound core)."""
    from concurrent.futures import ThreadPoolExecutor

    names = sorted(CHECKS)
    with ThreadPoolExecutor(2) as pool:
        procs = list(pool.map(lambda n: run_python(CHECKS[n], disable=n, timeout=600), names))
    passing = [n for n, p in zip(names, procs, strict=True) if p.returncode == 0]
    assert not passing, f"these checks pass without their fix, so they prove nothing: {passing}"
    other = {
        n: p.stderr[-1500:]
        for n, p in zip(names, procs, strict=True)
        if not re.search(FAILS_WITHOUT[n], p.stderr)
    }
    assert not other, f"these checks fail without their fix, but not as the fix says: {other}"


@pytest.mark.subprocess
def test_unknown_fix_name_is_an_error():
    proc = run_python("import mmf", disable="no_such_fix")
    assert proc.returncode != 0 and "no_such_fix" in proc.stderr


@pytest.mark.subprocess
def test_bridge_refuses_to_install_after_mmf(tmp_path):
    code = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
        "if type(f).__name__ != 'MMFPatchFinder']\n"
        "import mla_bridge; mla_bridge._FINDER = None\n"
        "sys.modules['mmf'] = type(sys)('mmf')\n"
        "try:\n    mla_bridge.install()\nexcept RuntimeError as e:\n    print('refused:', e)\n"
    )
    proc = run_python(code)
    assert "refused: mla_bridge must be installed before MMF" in proc.stdout, proc.stderr


@pytest.mark.subprocess
def test_plugin_registers_on_register():
    proc = run_python(
        "import mla_plugin\n"
        "mla_plugin.register()\n"
        "from mmf.common.registry import registry\n"
        "for m in ['mla', 'concat', 'mla_late_fusion']: assert registry.get_model_class(m), m\n"
        "assert registry.get_builder_class('synthetic')\n"
        "assert registry.get_trainer_class('multimodal')"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.subprocess
def test_mmf_run_starts_on_this_stack(save_dir):
    """MMF's own ``mmf_run``, unmodified, on Python 3.11 + torch 2.x (``mmf_predict``:
    tests/trainers/test_mmf_run.py)."""
    run_cli("mmf_run", [f"config={SYNTHETIC}", f"env.save_dir={save_dir}", *QUICK])
