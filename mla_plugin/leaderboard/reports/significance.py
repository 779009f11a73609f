"""The statistics behind the reports' "which differences are real" (NumPy, SciPy and
scikit-posthocs; neither torch nor MMF):

- within a dataset, two methods on the same test samples: :func:`mcnemar_exact` (exact
  McNemar), :func:`bootstrap_interval` (paired bootstrap of the accuracy difference, over
  test samples, seeded) and :func:`holm` (Holm's step-down correction);
- across datasets (Demšar 2006): :func:`average_ranks`, :func:`friedman` (SciPy's Friedman
  test), :func:`nemenyi` (scikit-posthocs' Nemenyi post-hoc) and
  :func:`critical_difference` (Nemenyi's CD).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA = 0.05
"""The level of every test (and 1 - the bootstrap interval's coverage)."""
BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 4000


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of a paired 2×2 table whose discordant cells are
    ``b`` (the first right, the second wrong) and ``c`` (the reverse): the binomial test of
    ``b`` successes in ``b + c`` trials at 1/2 (1.0 when no pair is discordant)."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    return float(binomtest(int(b), int(b + c), 0.5, alternative="two-sided").pvalue)


def bootstrap_interval(
    differences,
    counts=None,
    level: float = 1 - ALPHA,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of a paired mean difference, resampling units with replacement.

    ``differences[i]`` is unit i's summed difference (e.g. correct_A - correct_B over the
    seeds that scored test sample i) and ``counts[i]`` how many pairs it sums (1 each
    without ``counts``); a resample's statistic is sum(differences) / sum(counts) of the
    drawn units.  ``np.random.default_rng(seed)`` draws them, so the interval is the same on
    every build."""
    d = np.asarray(differences, float)
    n = np.ones_like(d) if counts is None else np.asarray(counts, float)
    if len(d) == 0:
        return (np.nan, np.nan)
    # Units of equal (difference, count) are interchangeable, and a paired test has few such
    # kinds (most samples: both right), so drawing len(d) units with replacement is drawing
    # how many of each kind: one multinomial per resample, whatever the test set's size.
    kinds, members = np.unique(np.stack([d, n], axis=1), axis=0, return_counts=True)
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(len(d), members / len(d), size=resamples)
    stats = (drawn @ kinds[:, 0]) / (drawn @ kinds[:, 1])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (in the input's order): the i-th smallest of m
    p-values times (m - i + 1), made non-decreasing in that order, capped at 1."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = scaled
    return adjusted


def average_ranks(scores: pd.DataFrame) -> pd.Series:
    """Each column's (method's) mean rank over the rows (datasets), rank 1 the highest
    score, ties sharing the mean of their ranks; best first."""
    ranks = scores.rank(axis=1, ascending=False, method="average").mean(axis=0)
    return ranks.sort_values(kind="stable")


def friedman(scores: pd.DataFrame) -> tuple[float, float]:
    """Friedman's chi-square statistic and p-value (SciPy, with its tie correction) for
    rows = blocks (datasets) and columns = treatments (methods, at least three)."""
    from scipy.stats import friedmanchisquare

    result = friedmanchisquare(*(scores[c].to_numpy(float) for c in scores.columns))
    return float(result.statistic), float(result.pvalue)


def nemenyi(scores: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi's post-hoc p-values after Friedman (scikit-posthocs), methods × methods."""
    import scikit_posthocs

    p = scikit_posthocs.posthoc_nemenyi_friedman(scores.to_numpy(float))
    return pd.DataFrame(p.to_numpy(float), index=scores.columns, columns=scores.columns)


def critical_difference(methods: int, datasets: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks (Demšar 2006, eq. 5):
    q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range quantile / sqrt 2."""
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, methods, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(methods * (methods + 1) / (6 * datasets)))
