"""The rule that states an edge's direction, at its boundary (``causal.confidence.edge_decision``).

A pair ``(a, b)`` is linked when either direction has ``p <= alpha``.  Its direction comes from the bootstrap
probabilities: with ``share = P(a <- b) / (P(a <- b) + P(b <- a))``, the pair is stated ``a <- b`` when
``share >= min_direction`` (0.75 by default), ``b <- a`` when ``share <= 1 - min_direction``, and "both" in
between.  Each case is a (2, 2) matrix; they are stacked as (n, 2, 2), as windows are.
"""

from __future__ import annotations

import numpy as np

from napari_causal_lattice.causal import LINK_TYPES, edge_decision, link_type

A_FROM_B, B_FROM_A, BOTH, NONE = (LINK_TYPES.index(t) for t in ("a <- b", "b <- a", "both", "none"))
#: Just off a boundary: 2^-10, exact in binary so the shares below are exact too.
EPS = 2.0**-10


def _links(shares, *, total=1.0, p_ab=0.001, p_ba=0.5, **options):
    """Link type of the pair (0, 1) for each share of P(0 <- 1) among the pair's linked resamples."""
    shares = np.asarray(shares, dtype=float)
    n = shares.size
    p_values = np.full((n, 2, 2), np.nan)
    p_values[:, 0, 1], p_values[:, 1, 0] = p_ab, p_ba
    prob = np.zeros((n, 2, 2))
    prob[:, 0, 1], prob[:, 1, 0] = shares * total, (1.0 - shares) * total
    return link_type(edge_decision(p_values, prob, **options), 0, 1).tolist()


def test_direction_is_stated_from_a_share_of_three_quarters():
    # share  0.75 - eps   0.75      0.75 + eps  (P(a <- b) + P(b <- a) = 1)
    assert _links([0.75 - EPS, 0.75, 0.75 + EPS]) == [BOTH, A_FROM_B, A_FROM_B]
    # and the mirror boundary 1 - min_direction = 0.25 for b <- a
    assert _links([0.25 - EPS, 0.25, 0.25 + EPS]) == [B_FROM_A, B_FROM_A, BOTH]
    # a clear majority and an even split
    assert _links([1.0, 0.9, 0.5, 0.1, 0.0]) == [A_FROM_B, A_FROM_B, BOTH, B_FROM_A, B_FROM_A]


def test_share_counts_only_the_resamples_that_found_the_pair_linked():
    # 60 % found a <- b, 20 % b <- a, 20 % no edge: the share is 0.6 / 0.8 = 0.75, stated a <- b;
    # 58 % / 22 %: 0.725, both
    assert _links([0.75, 0.725], total=0.8) == [A_FROM_B, BOTH]
    # bootstrap counts of 100 resamples, as lingam reports them: 75 / 25 and 74 / 26
    assert _links([75 / 100, 74 / 100]) == [A_FROM_B, BOTH]


def test_other_min_direction_moves_the_boundary():
    # min_direction 0.6: 0.6 - eps is both, 0.6 + eps is stated
    assert _links([0.6 - EPS, 0.6 + EPS], min_direction=0.6) == [BOTH, A_FROM_B]
    # min_direction 0.5 states every linked pair with a majority
    assert _links([0.5 + EPS, 0.5 - EPS], min_direction=0.5) == [A_FROM_B, B_FROM_A]


def _counted(n_ab: int, n_ba: int, n_boot: int = 100, **options) -> int:
    """Link type of (0, 1) when n_ab of n_boot resamples found 0 <- 1 and n_ba found 1 <- 0 (as lingam counts)."""
    p_values = np.array([[np.nan, 0.001], [0.5, np.nan]])
    prob = np.array([[0.0, n_ab / n_boot], [n_ba / n_boot, 0.0]])
    return int(link_type(edge_decision(p_values, prob, **options), 0, 1))


def test_a_share_exactly_at_min_direction_states_the_direction_for_any_min_direction():
    """90 of 100 resamples at min_direction 0.9 state the direction, although 1 - 0.9 rounds below 0.1."""
    assert _counted(75, 25, min_direction=0.75) == A_FROM_B
    assert _counted(90, 10, min_direction=0.9) == A_FROM_B
    assert _counted(80, 20, min_direction=0.8) == A_FROM_B


def test_a_linked_pair_is_never_dropped_by_the_direction_rule():
    """An exact tie at min_direction 0.5 marks the pair "both" (it used to drop it)."""
    assert _counted(40, 40, min_direction=0.5) == BOTH


def test_alpha_decides_whether_the_pair_is_linked_at_all():
    # p exactly at alpha links the pair; just above does not, whatever the bootstrap says
    assert _links([1.0, 1.0], p_ab=0.01, alpha=0.01) == [A_FROM_B, A_FROM_B]
    assert _links([1.0], p_ab=0.01 + 1e-9, alpha=0.01) == [NONE]
    # the significant direction alone, against the bootstrap: the pair is linked, the bootstrap sets the way
    assert _links([0.0], p_ab=0.001) == [B_FROM_A]


def test_without_bootstrap_probabilities_the_p_values_alone_decide():
    p_values = np.array([[np.nan, 0.001], [0.5, np.nan]])
    assert link_type(edge_decision(p_values), 0, 1) == A_FROM_B
    # probabilities of zero (no resample found either edge): only the significant direction is marked
    assert link_type(edge_decision(p_values, np.zeros((2, 2))), 0, 1) == A_FROM_B
    both = np.array([[np.nan, 0.001], [0.002, np.nan]])
    assert link_type(edge_decision(both, np.zeros((2, 2))), 0, 1) == BOTH
