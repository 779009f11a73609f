"""Modality valuation's rule with hand-computed numbers
(mla_plugin/core/modality_valuation.py)."""

import pytest
import torch

from mla_plugin.core.modality_valuation import (
    coalition_values,
    coalitions,
    modality_resampling,
    sample_copies,
    shapley,
)


def _card_sample():
    # the card's sample: right with a and v, right with a alone, wrong with v alone
    return {(0, 1): torch.tensor([True]), (0,): torch.tensor([True]), (1,): torch.tensor([False])}


def test_the_cards_sample_under_both_full_values():
    # full value 1 (BalanceBenchmark): phi_a = 1/2 * 1 + 1/2 * (1 - 0) = 1, phi_v = 0
    phi = shapley(coalition_values(_card_sample(), 2, 1.0), 2)
    assert phi.tolist() == [[1.0, 0.0]]
    assert sample_copies(phi).tolist() == [[0, 2]]  # phi_a = 1: boundary, none; v: 2
    # full value 2 (the official code): phi_a = (1 + 2 - 0)/2 = 1.5, phi_v = (0 + 2 - 1)/2 = 0.5
    phi = shapley(coalition_values(_card_sample(), 2, 2.0), 2)
    assert phi.tolist() == [[1.5, 0.5]]
    assert sample_copies(phi).tolist() == [[0, 1]]


def test_copy_bins_exclude_their_bounds():
    phi = torch.tensor([[0.4, -0.1, -0.2, 0.99, 1.0, 0.0]])
    assert sample_copies(phi).tolist() == [[0, 0, 3, 1, 0, 2]]


def test_three_modalities():
    # v(S) = 1 exactly when S holds modality 0: all the credit is 0's
    correct = {s: torch.tensor([0 in s]) for s in coalitions(3)}
    assert shapley(coalition_values(correct, 3, 1.0), 3).tolist() == [[1.0, 0.0, 0.0]]
    # every coalition right: 1/3 each (they sum to v(full) = 1)
    correct = {s: torch.tensor([True]) for s in coalitions(3)}
    phi = shapley(coalition_values(correct, 3, 1.0), 3)
    assert phi.tolist()[0] == pytest.approx([1 / 3] * 3)
    assert len(coalitions(3)) == 7


def test_modality_level_count_paper_and_balancebenchmark():
    # mean contributions 1.0 and 0.25: gaps 0 and 0.75, low = modality 1
    mean = torch.tensor([1.0, 0.25])
    # paper: R = 2/3 * 0.75 * alpha * N = 0.5 * 0.5 * 100 = 25
    assert modality_resampling(mean, 100, alpha=0.5, variant="paper") == (1, 25)
    # BalanceBenchmark: ordered pairs (2 x 0.75) / (M - 1), no alpha: 2/3 * 1.5 * 100 = 100
    assert modality_resampling(mean, 100, alpha=0.5, variant="balancebenchmark") == (1, 100)
    with pytest.raises(ValueError, match="variant"):
        modality_resampling(mean, 100, alpha=1.0, variant="other")
