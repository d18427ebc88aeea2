"""Causal discovery (DirectLiNGAM) on descriptor tables: engine, prior knowledge, result objects.

``fit_lingam`` is the entry point; ``direct_lingam_batch`` is the batched engine that the sliding-window
analysis reuses.  Adjacency convention everywhere: ``B[i, j]`` is the direct effect of ``j`` on ``i``.
"""

from .confidence import LINK_TYPES, edge_decision, fdr_adjust, link_type, order_pvalues, spatial_inflation
from .engine import bootstrap_indices, direct_lingam, direct_lingam_batch
from .fit import (
    DEFAULT_EXOGENOUS,
    DeterministicDescriptorWarning,
    ErrorDependenceWarning,
    fit_lingam,
    near_deterministic,
    validate_table,
)
from .methods import CausalMethod, EngineMethod, LingamMethod, resolve_method
from .prior import describe_prior_knowledge, make_prior_knowledge, parse_edge, resolve_prior
from .result import LingamResult

__all__ = [
    "CausalMethod",
    "DEFAULT_EXOGENOUS",
    "DeterministicDescriptorWarning",
    "ErrorDependenceWarning",
    "EngineMethod",
    "LINK_TYPES",
    "LingamMethod",
    "LingamResult",
    "edge_decision",
    "fdr_adjust",
    "link_type",
    "near_deterministic",
    "order_pvalues",
    "spatial_inflation",
    "resolve_method",
    "resolve_prior",
    "bootstrap_indices",
    "describe_prior_knowledge",
    "direct_lingam",
    "direct_lingam_batch",
    "fit_lingam",
    "make_prior_knowledge",
    "parse_edge",
    "validate_table",
]
