"""Principal component analysis of the windowed adjacency matrices (paper Fig. 5).

Each fitted window contributes its ``p x p`` matrix, flattened to ``p**2`` values; the principal
components are again ``p x p`` matrices and each window's score on component ``k`` forms the
``k``-th loading map, aligned on the image with the sliding result's window lattice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lattice import Lattice
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
    """

    components: np.ndarray
    loadings: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    names: tuple
    lattice: Lattice | None
    use: str
    provenance: dict

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
        )


def adjacency_pca(result: SlidingResult, n_components: int = 4, *, use: str = "adjacency") -> AdjacencyPCA:
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

    Returns
    -------
    AdjacencyPCA
        Components (k, p, p), loading maps (k, ny, nx) with NaN for skipped windows, explained
        variance ratios (k,), the mean matrix and the window lattice.

    Raises
    ------
    ValueError
        Unknown ``use``, no probabilities, too few fitted windows or too many components.

    Examples
    --------
    >>> from napari_causal_lattice.sliding import sliding_lingam
    >>> from napari_causal_lattice.synthetic import synthetic_descriptor_grid
    >>> res = sliding_lingam(synthetic_descriptor_grid((24, 24), seed=0), window=12)
    >>> pca = adjacency_pca(res, 2)
    >>> pca.components.shape, pca.loadings.shape
    ((2, 8, 8), (2, 3, 3))
    """
    if not isinstance(result, SlidingResult):
        raise TypeError(f"adjacency_pca needs a SlidingResult from sliding_lingam, got {type(result).__name__}")
    if use not in _USES:
        raise ValueError(f"use must be one of {', '.join(_USES)}, got {use!r}")
    if use == "probabilities":
        if result.probabilities is None:
            raise ValueError("the sliding result has no bootstrap probabilities; rerun with n_bootstrap > 0")
        matrices = result.probabilities
    else:
        matrices = result.adjacency if use == "adjacency" else np.abs(result.adjacency)
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be a whole number, got {n_components!r}")
    fitted = result.fitted
    ny, nx, p, _ = matrices.shape
    samples = matrices[fitted].reshape(-1, p * p)
    limit = min(samples.shape[0] - 1, p * p)
    if limit < 1:
        raise ValueError(
            f"PCA needs at least 2 fitted windows, this result has {samples.shape[0]}; use a smaller window or stride"
        )
    if not 1 <= n_components <= limit:
        raise ValueError(f"n_components must be between 1 and {limit} for this result, got {n_components}")
    mean = samples.mean(axis=0)
    centred = samples - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    total = float(np.sum(singular**2))
    if total == 0.0:
        raise ValueError("all fitted windows have the same matrix; there is no spatial variation to decompose")
    vt = vt[:n_components]
    peak = np.argmax(np.abs(vt), axis=1)
    vt = vt * np.sign(vt[np.arange(n_components), peak])[:, None]
    scores = centred @ vt.T
    loadings = np.full((n_components, ny, nx), np.nan)
    loadings[:, fitted] = scores.T
    return AdjacencyPCA(
        components=vt.reshape(n_components, p, p),
        loadings=loadings,
        explained_variance_ratio=singular[:n_components] ** 2 / total,
        mean=mean.reshape(p, p),
        names=tuple(result.names),
        lattice=result.lattice,
        use=use,
        provenance=make_provenance(
            "adjacency_pca",
            {"n_components": int(n_components), "use": use, "n_windows": int(samples.shape[0])},
            inputs={"sliding": result.provenance},
        ),
    )
