"""No shadowing: after ``mla_plugin.register()`` every name MMF registered (in every registry
mapping: models, builders, trainers, processors, metrics, losses, fusions, ...) still
resolves to MMF's own object, and no plugin model takes a name MMF main registers.

In a fresh process, since this one may have imported the plugin already.  MMF's models,
builders, trainers ... are imported the way ``mmf_run`` imports them
(``mmf.utils.env.setup_imports``), then snapshotted, then the plugin is imported.
"""

import json

import pytest

from mla_plugin.models.mmf_names import MMF_MODEL_NAMES
from tests.support import run_python

pytestmark = pytest.mark.subprocess

SNAPSHOT = """
import json
from mmf.common.registry import registry
from mmf.utils.env import setup_imports
setup_imports()
import mmf.models  # every model module, whatever setup_imports skipped
maps = {k: dict(v) for k, v in registry.mapping.items() if k != "state"}
import mla_plugin
mla_plugin.register()
replaced = [f"{k}:{n}" for k, v in maps.items() for n, o in v.items()
            if registry.mapping[k].get(n) is not o]
print(json.dumps({
    "replaced": replaced,
    "mmf_models": sorted(maps["model_name_mapping"]),
    "counts": {k: len(v) for k, v in maps.items()},
    "plugin_models": sorted(set(registry.mapping["model_name_mapping"])
                            - set(maps["model_name_mapping"])),
}))
"""


@pytest.fixture(scope="module")
def snapshot():
    proc = run_python(SNAPSHOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_nothing_mmf_registered_is_replaced(snapshot):
    # the snapshot really holds MMF's registrations (an empty one would pass vacuously)
    assert {"late_fusion", "concat_bow", "mmbt"} <= set(snapshot["mmf_models"])
    assert snapshot["counts"]["builder_name_mapping"] > 0
    assert snapshot["counts"]["processor_name_mapping"] > 0
    assert snapshot["replaced"] == []


def test_no_plugin_model_takes_an_mmf_main_name(snapshot):
    assert "mla_late_fusion" in snapshot["plugin_models"]
    # rc10's models are all in the list read from MMF main
    assert set(snapshot["mmf_models"]) <= MMF_MODEL_NAMES
    assert sorted(set(snapshot["plugin_models"]) & MMF_MODEL_NAMES) == []
