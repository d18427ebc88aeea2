"""Principal component analysis of the windowed adjacency matrices (paper Fig. 5).

Each fitted window contributes its ``p x p`` matrix, flattened to ``p**2`` values; the principal
components are again ``p x p`` matrices and each window's score on component ``k`` forms the
``k``-th loading map, aligned on the image with the sliding result's window lattice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lattice import Lattice
from .options import PCAOptions, takes_options
from .provenance import make_provenance
from .sliding import SlidingResult

_USES = ("adjacency", "abs_adjacency", "probabilities")


@dataclass(frozen=True)
class AdjacencyPCA:
    """Principal components of the per-window adjacency matrices.

    Attributes
    ----------
    components : (k, p, p) float array
        Unit-norm component matrices (same ``effect <- cause`` layout as the adjacency), ranked by
        explained variance.  Sign fixed so that each component's largest-magnitude entry is positive.
    loadings : (k, ny, nx) float array
        Score of every window on every component (the loading maps); NaN for skipped windows.
    explained_variance_ratio : (k,) float array
        Fraction of the total variance of the matrices explained by each component.
    mean : (p, p) float array
        Mean matrix over the fitted windows (subtracted before the decomposition).
    names : tuple of str
        Variable names of the matrix axes.
    lattice : Lattice or None
        Window index -> image px (from the sliding result), to align the loading maps.
    use : str
        Which per-window matrix was decomposed: ``"adjacency"``, ``"abs_adjacency"`` or ``"probabilities"``.
    provenance : dict
        Parameters and the sliding result's provenance.
    outliers : (ny, nx) bool array or None
        Windows left out of the decomposition as outliers (robust distance, see :func:`adjacency_pca`); their
        loadings are still their scores on the components.  None for results saved before it existed.
    excluded : (ny, nx) bool array or None
        Windows excluded by the caller (``exclude=``); their loadings are NaN.
    significant_only : bool
        Whether non-significant elements were set to zero before the decomposition.
    """

    components: np.ndarray
    loadings: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    names: tuple
    lattice: Lattice | None
    use: str
    provenance: dict
    outliers: np.ndarray | None = None
    excluded: np.ndarray | None = None
    significant_only: bool = False

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def to_state(self) -> dict:
        return {
            "components": self.components.copy(),
            "loadings": self.loadings.copy(),
            "explained_variance_ratio": self.explained_variance_ratio.copy(),
            "mean": self.mean.copy(),
            "names": list(self.names),
            "lattice": None if self.lattice is None else self.lattice.to_state(),
            "use": self.use,
            "provenance": self.provenance,
            "outliers": None if self.outliers is None else self.outliers.copy(),
            "excluded": None if self.excluded is None else self.excluded.copy(),
            "significant_only": bool(self.significant_only),
        }

    @classmethod
    def from_state(cls, state: dict) -> "AdjacencyPCA":
        return cls(
            components=np.asarray(state["components"], dtype=float),
            loadings=np.asarray(state["loadings"], dtype=float),
            explained_variance_ratio=np.asarray(state["explained_variance_ratio"], dtype=float),
            mean=np.asarray(state["mean"], dtype=float),
            names=tuple(str(n) for n in state["names"]),
            lattice=None if state["lattice"] is None else Lattice.from_state(state["lattice"]),
            use=str(state["use"]),
            provenance=state["provenance"],
            outliers=None if state.get("outliers") is None else np.asarray(state["outliers"], dtype=bool),
            excluded=None if state.get("excluded") is None else np.asarray(state["excluded"], dtype=bool),
            significant_only=bool(state.get("significant_only", False)),
        )


def _used_windows(result: SlidingResult, exclude) -> tuple[np.ndarray, np.ndarray]:
    """``(used, excluded)`` (ny, nx) bool: the fitted windows not excluded, and the excluded ones."""
    ny, nx = result.fitted.shape
    used = result.fitted.copy()
    excluded = np.zeros((ny, nx), dtype=bool)
    if exclude is not None:
        excluded = np.asarray(exclude, dtype=bool)
        if excluded.shape != (ny, nx):
            raise ValueError(f"exclude must be a ({ny}, {nx}) bool array of windows, got shape {excluded.shape}")
        used &= ~excluded
    return used, excluded


def _principal_components(samples: np.ndarray, n_components: int):
    """``(mean, singular values, components, total variance)`` of the (n, p*p) window matrices; each component's
    sign makes its largest element positive."""
    limit = min(samples.shape[0] - 1, samples.shape[1])
    if limit < 1:
        raise ValueError(
            f"PCA needs at least 2 fitted windows, this result has {samples.shape[0]}; use a smaller window or stride"
        )
    if not 1 <= n_components <= limit:
        raise ValueError(f"n_components must be between 1 and {limit} for this result, got {n_components}")
    mean = samples.mean(axis=0)
    _, singular, vt = np.linalg.svd(samples - mean, full_matrices=False)
    total = float(np.sum(singular**2))
    if total == 0.0:
        raise ValueError("all fitted windows have the same matrix; there is no spatial variation to decompose")
    vt = vt[:n_components]
    peak = np.argmax(np.abs(vt), axis=1)
    return mean, singular, vt * np.sign(vt[np.arange(n_components), peak])[:, None], total


@takes_options(PCAOptions)
def adjacency_pca(result: SlidingResult, n_components: int = 4, *, use: str = "adjacency",
                  significant_only: bool = False, exclude=None, outlier_factor: float | None = 3.0) -> AdjacencyPCA:
    """PCA of the per-window matrices of a sliding LiNGAM result.

    Parameters
    ----------
    result : SlidingResult
        Output of :func:`~napari_causal_lattice.sliding.sliding_lingam`.
    n_components : int
        Number of components ``k`` to keep (1 ... min(fitted windows - 1, p**2)).
    use : {"adjacency", "abs_adjacency", "probabilities"}
        Decompose the signed coefficients, their magnitudes (the paper's effect size), or the
        bootstrap probabilities (needs ``n_bootstrap > 0``).
    significant_only : bool
        Set the elements that fail the calibrated edge test (``result.significant``) to zero first, so the
        components describe only edges one can believe.
    exclude : (ny, nx) bool array, optional
        Windows to leave out (e.g. windows over flagged cells); their loadings are NaN.  Skipped windows
        are always left out.
    outlier_factor : float or None
        Robustness to a few wild windows: a window whose distance (Frobenius norm) from the element-wise
        median matrix exceeds ``outlier_factor`` times the 90th percentile of all windows' distances is left
        out of the mean and the components and flagged in ``outliers``; its loading is still its score.  The
        percentile ignores up to 10 % of wild windows, and a genuine minority region (a band of interface
        windows, one domain of two) sits within ~2x of it, so it is kept.  None keeps every window.

    Returns
    -------
    AdjacencyPCA
        Components (k, p, p), loading maps (k, ny, nx) with NaN for skipped and excluded windows, explained
        variance ratios (k,), the mean matrix, the window lattice and the outlier mask.

    Raises
    ------
    ValueError
        Unknown ``use``, no probabilities or significance mask, a wrong ``exclude`` shape, too few fitted
        windows or too many components.

    Examples
    --------
    >>> from napari_causal_lattice.sliding import sliding_lingam
    >>> from napari_causal_lattice.synthetic import synthetic_descriptor_grid
    >>> res = sliding_lingam(synthetic_descriptor_grid((24, 24), seed=0), window=12)
    >>> pca = adjacency_pca(res, 2)
    >>> pca.components.shape, pca.loadings.shape
    ((2, 8, 8), (2, 3, 3))
    """
    matrices = _matrices(result, use, significant_only)
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be a whole number, got {n_components!r}")
    ny, nx, p, _ = matrices.shape
    used, excluded = _used_windows(result, exclude)
    outliers = _outliers(matrices, used, outlier_factor)
    samples = matrices[used & ~outliers].reshape(-1, p * p)
    mean, singular, vt, total = _principal_components(samples, n_components)
    loadings = np.full((n_components, ny, nx), np.nan)
    loadings[:, used] = ((matrices[used].reshape(-1, p * p) - mean) @ vt.T).T
    params = {"n_components": int(n_components), "use": use, "n_windows": int(samples.shape[0]),
              "significant_only": bool(significant_only), "outlier_factor": outlier_factor,
              "n_outliers": int(outliers.sum()), "n_excluded": int(excluded.sum())}
    return AdjacencyPCA(
        components=vt.reshape(n_components, p, p), loadings=loadings,
        explained_variance_ratio=singular[:n_components] ** 2 / total, mean=mean.reshape(p, p),
        names=tuple(result.names), lattice=result.lattice, use=use,
        provenance=make_provenance("adjacency_pca", params, inputs={"sliding": result.provenance}),
        outliers=outliers, excluded=excluded, significant_only=bool(significant_only),
    )


def _matrices(result: SlidingResult, use: str, significant_only: bool) -> np.ndarray:
    """(ny, nx, p, p) per-window matrices to decompose (non-significant elements zeroed on request)."""
    if not isinstance(result, SlidingResult):
        raise TypeError(f"adjacency_pca needs a SlidingResult from sliding_lingam, got {type(result).__name__}")
    if use not in _USES:
        raise ValueError(f"use must be one of {', '.join(_USES)}, got {use!r}")
    if use == "probabilities":
        if result.probabilities is None:
            raise ValueError("the sliding result has no bootstrap probabilities; run the sliding LiNGAM again "
                             "with bootstrap resamples (n_bootstrap > 0)")
        matrices = result.probabilities
    else:
        matrices = result.adjacency if use == "adjacency" else np.abs(result.adjacency)
    if significant_only:
        if result.significant is None:
            raise ValueError("the sliding result has no significance mask (saved by an older version); rerun "
                             "the sliding LiNGAM, or use all elements (untick 'significant elements only': "
                             "significant_only=False)")
        matrices = np.where(result.significant, matrices, 0.0)
    return matrices


def _outliers(matrices: np.ndarray, used: np.ndarray, factor: float | None) -> np.ndarray:
    """(ny, nx) windows farther from the median matrix than ``factor`` x the 90th percentile of the distances."""
    out = np.zeros(used.shape, dtype=bool)
    if factor is None or used.sum() < 4:
        return out
    flat = matrices[used].reshape(int(used.sum()), -1)
    distance = np.linalg.norm(flat - np.median(flat, axis=0), axis=1)
    scale = np.percentile(distance, 90)
    if scale > 0:
        out[used] = distance > float(factor) * scale
    return out
