"""Only the bridge's start-up file: pyproject.toml holds everything else.

``mla_bridge.pth`` must land in site-packages beside the packages, which pyproject's
package-data cannot place, so a one-line build step copies it there; the module it runs,
``mla_bridge_hook``, is a ``py-modules`` entry of pyproject.toml.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithBridge(build_py):
    """Also install ``mla_bridge.pth``, which arms the bridge's start-up hook: the bridge
    turns on at the first ``import mmf``."""

    def run(self):
        super().run()
        self.copy_file("mla_bridge.pth", os.path.join(self.build_lib, "mla_bridge.pth"))


setup(cmdclass={"build_py": BuildPyWithBridge})
