"""Fixtures shared by every test; the helpers are in :mod:`tests.support`."""

import pytest

# the session-scoped `slurm_cluster` fixture (a real local SLURM cluster)
pytest_plugins = ["tests.slurm_cluster"]


@pytest.fixture
def save_dir(tmp_path):
    return str(tmp_path / "save")
