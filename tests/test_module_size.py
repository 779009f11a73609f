"""Every module of the plugin and the bridge stays within the project's size rule (issue
"a house to live in"): a module that grows past it is split by concern."""

import pathlib

from tests.support import REPO

LIMIT = 400
PACKAGES = ("mla_plugin", "mla_bridge")


def test_every_module_is_at_most_400_lines():
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in sorted((pathlib.Path(REPO) / package).rglob("*.py"))
    }
    assert len(sizes) > 50  # the walk found the packages
    over = {path: n for path, n in sizes.items() if n > LIMIT}
    assert not over, f"modules over {LIMIT} lines (split them by concern): {over}"
