"""The linear probes' fit (:mod:`mla_plugin.analysis.probe`): informative features are read,
noise is not, and C is the first best on val.  The probe cell end to end is
tests/leaderboard/test_probes.py."""

import numpy as np

from mla_plugin.analysis import probe


def _blobs(n, d, rng, shuffle=False):
    y = rng.integers(0, 3, n)
    centres = np.eye(3, d) * 3.0
    x = centres[y] + rng.normal(size=(n, d))
    if shuffle:
        y = rng.permutation(y)
    return x, y


def test_probe_reads_informative_features_and_not_noise():
    rng = np.random.default_rng(0)
    xs, ys = {}, {}
    for split, n in (("train", 300), ("val", 100), ("test", 200)):
        xs[split], ys[split] = _blobs(n, 8, rng)
    fit = probe.fit_probe(xs, ys)
    assert fit["test"] > 0.85 and fit["C"] in probe.C_GRID and fit["converged"]
    assert probe.fit_probe(xs, ys) == fit  # deterministic
    noise = {s: _blobs(len(ys[s]), 8, rng, shuffle=True)[1] for s in ys}
    assert probe.fit_probe(xs, noise)["test"] < 0.5


def test_probe_c_is_the_first_best_on_val(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    xs, ys = {}, {}
    for split, n in (("train", 40), ("val", 200), ("test", 50)):
        xs[split], ys[split] = _blobs(n, 30, rng)
    xs["train"][:, 3] = 1.0  # a constant feature must not break the standardisation
    train, val, _ = probe._standardise(xs["train"], xs["val"], xs["test"])
    scores = [
        LogisticRegression(C=c, max_iter=probe.MAX_ITER)
        .fit(train, ys["train"])
        .score(val, ys["val"])
        for c in probe.C_GRID
    ]
    assert probe.fit_probe(xs, ys)["C"] == probe.C_GRID[int(np.argmax(scores))]
