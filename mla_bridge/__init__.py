"""The bridge that lets mmf 1.0.0rc10 (2020) run on Python 3.11 and torch 2.x.

Installed by the start-up hook :mod:`mla_bridge_hook` (``mla_bridge.pth``) when ``mmf``
is first imported, it rewrites MMF's own modules as they are imported; see :mod:`.fixes`.
It never imports the plugin (``mla_plugin``).
"""

import os

BRIDGE_DIR = os.path.dirname(os.path.abspath(__file__))
"""This folder: the bridge's ``defaults.yaml``, ``configs/`` and ``tokenizers/``."""

from mla_bridge.finder import MMFPatchFinder  # noqa: E402
from mla_bridge.finder import install as _install_finder  # noqa: E402

_FINDER = None


def install() -> MMFPatchFinder:
    """Install the bridge once; must run before the first ``import mmf``."""
    global _FINDER
    if _FINDER is None:
        from mla_bridge.fixes import enabled_fixes

        finder = MMFPatchFinder()
        for fix in enabled_fixes():
            fix.register(finder)
        _install_finder(finder)
        _FINDER = finder
    return _FINDER
