"""mla-plugin: MLA as a plugin for MMF.

MMF itself (mmf==1.0.0rc10) is installed separately with --no-deps (see the Makefile):
its metadata pins torch 1.5 and friends, which must not be dragged in.
"""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithBridge(build_py):
    """Also install ``mla_bridge.pth``, which turns the MMF bridge on at start-up."""

    def run(self):
        super().run()
        self.copy_file("mla_bridge.pth", os.path.join(self.build_lib, "mla_bridge.pth"))


setup(
    name="mla-plugin",
    version="0.1.0",
    description="MLA (Multimodal Learning with Alternating Unimodal Adaptation) for MMF",
    packages=find_packages(include=["mla_plugin", "mla_plugin.*", "mla_bridge", "mla_bridge.*"]),
    package_data={"mla_plugin": ["configs/*.yaml", "configs/*/*.yaml"], "mla_bridge": ["*.yaml"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1", "torchvision", "omegaconf>=2.4", "transformers>=4.30", "pandas",
        "numpy", "scikit-learn", "pyyaml", "requests", "tqdm", "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    cmdclass={"build_py": BuildPyWithBridge},
    entry_points={"console_scripts": ["mla-leaderboard = mla_plugin.leaderboard.cli:main"]},
)
