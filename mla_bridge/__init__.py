"""The bridge that lets mmf 1.0.0rc10 (2020) run on Python 3.11 and torch 2.x.

Installed at interpreter start-up by ``mla_bridge.pth`` (cheap: it imports nothing
heavy), it rewrites MMF's own modules as they are imported; see :mod:`.fixes`.
"""

from mla_bridge.finder import MMFPatchFinder
from mla_bridge.finder import install as _install_finder

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
