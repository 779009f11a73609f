"""Warm workers (executors/warm.py, trainers/warm_worker.py): a cell run in a worker that
ran other cells before writes the same ``metrics.json``, byte for byte, as its own
``mmf_run`` process; its ``train.log`` has only its lines; an exception fails only its
cell, and a crash of the worker only the cell it was running."""

import dataclasses
import os

import pytest

from mla_plugin.leaderboard import cells as cells_module
from mla_plugin.leaderboard.executors.local import LocalExecutor
from mla_plugin.leaderboard.methods import PROBE, Variant
from mla_plugin.leaderboard.plan import plan
from mla_plugin.utils import locks
from tests.support import subprocess_env

pytestmark = pytest.mark.subprocess

TINY = [
    "training.max_epochs=2",
    "dataset_config.synthetic.sizes.train=64",
    "dataset_config.synthetic.sizes.val=64",
    "dataset_config.synthetic.sizes.test=64",
]


def _cells(out, methods=("concat", "sum")):
    return plan(["synthetic"], list(methods), [1], [0.0], out, overrides=TINY, gap_methods=[])


@pytest.fixture(autouse=True)
def this_tree(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])


def test_warm_cells_write_the_same_metrics_as_one_process_per_cell(tmp_path):
    fresh, warm = _cells(str(tmp_path / "fresh")), _cells(str(tmp_path / "warm"))
    assert all(r.ok for r in LocalExecutor(progress=False, warm=False).run(fresh))
    executor = LocalExecutor(progress=False, warm=True)
    assert all(r.ok for r in executor.run(warm))
    executor.close()
    for a, b in zip(fresh, warm, strict=True):
        assert open(a.metrics_path, "rb").read() == open(b.metrics_path, "rb").read()
        log = open(os.path.join(b.save_dir, "train.log")).read()
        assert log.count("Training ") == 1 and f"Training {b.variant.method} " in log
    # one worker ran both (the lock's holder), where each fresh cell had its own process
    assert locks.holder(warm[0].save_dir) == locks.holder(warm[1].save_dir)
    assert locks.holder(fresh[0].save_dir) != locks.holder(fresh[1].save_dir)


def test_a_failing_or_crashing_cell_takes_no_other_cell_with_it(tmp_path, monkeypatch):
    first, last = _cells(str(tmp_path / "board"))
    bad = dataclasses.replace(
        first, save_dir=str(tmp_path / "bad"), overrides=(*TINY, "training.precision=fp64")
    )
    crash = dataclasses.replace(first, variant=Variant(PROBE), save_dir=str(tmp_path / "crash"))
    monkeypatch.setattr(cells_module, "PROBE_MODULE", "tests.leaderboard.crash_cell")
    executor = LocalExecutor(progress=False, warm=True)
    results = {r.cell.save_dir: r for r in executor.run([first, bad, crash, last])}
    executor.close()
    assert results[first.save_dir].ok and results[last.save_dir].ok
    assert results[bad.save_dir].returncode == 1
    assert "training.precision" in open(bad.log_path).read()  # its error, in its own log
    assert results[crash.save_dir].returncode == -9  # SIGKILL: the worker died with it
    # the exception left the worker running; the crash needed a new one for the last cell
    assert locks.holder(first.save_dir) == locks.holder(bad.save_dir)
    assert locks.holder(last.save_dir) != locks.holder(first.save_dir)
