"""Fixtures shared by every test; the helpers are in :mod:`tests.support`."""

import pytest


@pytest.fixture
def save_dir(tmp_path):
    return str(tmp_path / "save")
