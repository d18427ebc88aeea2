"""Causal discovery (DirectLiNGAM) on descriptor tables: engine, prior knowledge, result objects.

``fit_lingam`` is the entry point; ``direct_lingam_batch`` is the batched engine that the sliding-window
analysis reuses.  Adjacency convention everywhere: ``B[i, j]`` is the direct effect of ``j`` on ``i``.
"""

from .engine import bootstrap_indices, direct_lingam, direct_lingam_batch
from .fit import DEFAULT_EXOGENOUS, fit_lingam, validate_table
from .prior import describe_prior_knowledge, make_prior_knowledge, parse_edge
from .result import LingamResult

__all__ = [
    "DEFAULT_EXOGENOUS",
    "LingamResult",
    "bootstrap_indices",
    "describe_prior_knowledge",
    "direct_lingam",
    "direct_lingam_batch",
    "fit_lingam",
    "make_prior_knowledge",
    "parse_edge",
    "validate_table",
]
