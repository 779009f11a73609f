"""Fixtures shared by every test; the helpers are in :mod:`tests.support`."""

import pytest

# the session-scoped `slurm_cluster` fixture (a real local SLURM cluster)
pytest_plugins = ["tests.slurm_cluster"]


@pytest.fixture
def save_dir(tmp_path):
    return str(tmp_path / "save")


@pytest.fixture(scope="session")
def fsdd():
    """The FSDD recordings that avdigits reads.  Absent, the test fails (not skips),
    saying where they should be and how to get them."""
    from mla_plugin.data.fsdd import default_fsdd_dir

    path = default_fsdd_dir()
    if not path.is_dir():
        pytest.fail(
            f"the FSDD recordings (avdigits' audio) are not at {path}: clone "
            "https://github.com/Jakobovski/free-spoken-digit-dataset there (the dataset root "
            "or its recordings/ folder; default <checkout>/../shared/data/fsdd), or set "
            "MLA_FSDD_DIR to a copy (docs/datasets.md, avdigits)",
            pytrace=False,
        )
    return path
