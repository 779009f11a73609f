"""The reports' statistics against cases computed by hand: exact McNemar on a 2×2 table,
a paired bootstrap interval with a fixed seed, Holm on known p-values, average ranks and
Friedman's statistic on a small table, Nemenyi's critical difference."""

import math

import numpy as np
import pandas as pd
import pytest

from mla_plugin.leaderboard.reports import significance as sig


def test_mcnemar_exact_on_a_two_by_two_table():
    # discordant pairs b = 1 (A right, B wrong), c = 5: two-sided exact binomial at 1/2,
    # p = 2 * P(X <= 1 | n = 6) = 2 * (1 + 6) / 2**6
    assert sig.mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert sig.mcnemar_exact(5, 1) == pytest.approx(14 / 64)  # symmetric
    assert sig.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert sig.mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert sig.mcnemar_exact(0, 0) == 1.0  # no discordant pair: no evidence


def test_paired_bootstrap_interval_with_a_fixed_seed():
    # 20 test samples, A right and B wrong on 10, equal on 10: the bootstrap mean is
    # Binomial(20, 1/2) / 20; P(X <= 5) = 0.021 < 2.5 % < P(X <= 6) = 0.058 and
    # P(X <= 13) = 0.942 < 97.5 % < P(X <= 14) = 0.979, so the 95 % interval is [6, 14] / 20
    d = np.array([1] * 10 + [0] * 10)
    low, high = sig.bootstrap_interval(d, seed=0)
    assert (low, high) == pytest.approx((0.30, 0.70))
    assert sig.bootstrap_interval(d, seed=0) == (low, high)  # seeded: the same every build
    # pooled over seeds: a sample's summed difference over the seeds that scored it
    assert sig.bootstrap_interval(2 * d, counts=np.full(20, 2), seed=0) == (low, high)
    # every pair agrees: a degenerate interval at the difference
    assert sig.bootstrap_interval(np.full(7, -1.0), seed=3) == (-1.0, -1.0)


def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running
    # maximum 0.02, 0.03, 0.06, 0.06; back in the input's order
    adjusted = sig.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert sig.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


SCORES = pd.DataFrame(
    {"A": [90, 85, 70, 95], "B": [80, 85, 75, 90], "C": [70, 60, 65, 92]},
    index=["d1", "d2", "d3", "d4"],
)


def test_average_ranks_and_friedman_on_a_small_table():
    # ranks per dataset (1 = best): d1 1 2 3, d2 1.5 1.5 3 (a tie), d3 2 1 3, d4 1 3 2
    ranks = sig.average_ranks(SCORES)
    assert list(ranks.index) == ["A", "B", "C"]
    assert ranks.tolist() == pytest.approx([5.5 / 4, 7.5 / 4, 11 / 4])
    # chi2_F = 12 N / (k (k + 1)) * (sum R_j^2 - k (k + 1)^2 / 4), N = 4, k = 3,
    # divided by the tie correction 1 - sum(t^3 - t) / (N k (k^2 - 1)) = 1 - 6 / 96
    r = np.array([5.5, 7.5, 11]) / 4
    chi2 = 12 * 4 / (3 * 4) * ((r**2).sum() - 3 * 4**2 / 4) / (1 - 6 / 96)
    assert chi2 == pytest.approx(3.875 / 0.9375)
    statistic, p = sig.friedman(SCORES)
    assert statistic == pytest.approx(chi2)
    assert p == pytest.approx(math.exp(-chi2 / 2))  # chi-square with 2 df


def test_nemenyi_and_the_critical_difference():
    # Demšar (2006), Table 5(a): q_0.05 = 2.569 for four methods
    assert sig.critical_difference(4, 2) == pytest.approx(2.569 * math.sqrt(4 * 5 / 12), abs=1e-3)
    p = sig.nemenyi(SCORES)
    assert list(p.index) == list(p.columns) == ["A", "B", "C"]
    assert np.allclose(p.to_numpy(), p.to_numpy().T)
    # A and C differ most in average rank (1.375 against 2.75): the smallest p
    assert p.loc["A", "C"] < p.loc["B", "C"] < p.loc["A", "B"]
