"""Start-up hook of the MMF bridge, run by ``mla_bridge.pth`` in every interpreter.

It only puts a small finder on ``sys.meta_path`` (standard library only, nothing else is
imported): when ``mmf`` or ``mmf_cli`` is first imported, the finder steps aside and
installs :mod:`mla_bridge`, whose own finder then loads MMF.  So the bridge is on before
MMF in every entry point (``mmf_run``, ``mmf_predict``, torchrun, tests), and an
interpreter that never imports MMF never loads the bridge.
"""

import sys

TRIGGERS = ("mmf", "mmf_cli")


class _BridgeOnFirstMMFImport:
    """Installs the bridge when a top-level MMF package is first looked up."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in TRIGGERS:
            return None
        disarm()
        import mla_bridge

        return mla_bridge.install().find_spec(fullname, path, target)


def arm() -> None:
    """Put the hook on ``sys.meta_path`` (once; nothing if MMF is already imported)."""
    if any(name in sys.modules for name in TRIGGERS):
        return
    if not any(isinstance(f, _BridgeOnFirstMMFImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _BridgeOnFirstMMFImport())


def disarm() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _BridgeOnFirstMMFImport)]
