"""The core package's docstring indexes every module in it (README's Layout says so)."""

import os
import re

import mla_plugin.core as core


def test_core_index_names_every_module():
    folder = os.path.dirname(core.__file__)
    modules = {f[:-3] for f in os.listdir(folder) if f.endswith(".py") and f != "__init__.py"}
    listed = set(re.findall(r":mod:`\.(\w+)`", core.__doc__))
    assert modules - listed == set(), "modules missing from mla_plugin/core/__init__.py"
    assert listed - modules == set(), "the index names modules that are gone"
