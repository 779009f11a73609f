"""The local executor's order: a dataset's first cell runs alone (it builds the caches),
once per executor; later calls (the tuning rounds) run that dataset's cells in parallel."""

import dataclasses
import threading

from mla_plugin.leaderboard.executors import Result
from mla_plugin.leaderboard.executors.local import LocalExecutor


@dataclasses.dataclass(frozen=True)
class FakeCell:
    dataset: str
    key: str

    def done(self):
        return False

    def needs_analysis(self):
        return False


class Recorder(LocalExecutor):
    """Records, for each cell, the cells running when it started; with ``pair`` set, a
    cell waits (bounded) for a partner, so two cells given to the pool together overlap."""

    def __init__(self):
        super().__init__(jobs=2, progress=False)
        self.running: set[str] = set()
        self.seen: dict[str, set[str]] = {}
        self.guard = threading.Lock()
        self.partner = threading.Barrier(2)
        self.pair = False

    def run_cell(self, cell):
        with self.guard:
            self.seen[cell.key] = set(self.running)
            self.running.add(cell.key)
        if self.pair:
            try:
                self.partner.wait(timeout=60)
            except threading.BrokenBarrierError:
                self.partner.reset()  # no partner came: the cell ran alone
        with self.guard:
            self.running.discard(cell.key)
        return Result(cell, True, 0.0)


def test_first_cell_alone_once_per_executor():
    ex = Recorder()
    first_round = [FakeCell("d", "a"), FakeCell("d", "b"), FakeCell("d", "c")]
    assert all(r.ok for r in ex.run(first_round))
    assert ex.seen["a"] == set()  # alone: "b" and "c" started after it ended
    assert "a" not in ex.seen["b"] | ex.seen["c"]
    ex.seen.clear()
    ex.pair = True
    assert all(r.ok for r in ex.run([FakeCell("d", "x"), FakeCell("d", "y")]))
    assert ex.seen["y"] == {"x"}  # the dataset is primed: the next round's two overlap
    ex.seen.clear()
    ex.pair = False
    assert all(r.ok for r in ex.run([FakeCell("e", "p"), FakeCell("e", "q")]))
    assert ex.seen["p"] == set() and ex.seen["q"] == set()  # a new dataset: alone again
