"""Statistics of a live sample against a reference: PSI over quantile bins, two-sample KS.

Pure numpy / scipy; `fti.models.drift.reference_window.ReferenceWindowTest` and
`fti.models.drift.kswin.FastKSWIN` build on them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles, duplicates dropped (discrete data).

    Edges are reference values (inverted CDF), so a bin is (edges[i-1], edges[i]].

    >>> quantile_edges(np.arange(1.0, 11.0), 2).tolist()
    [5.0]
    >>> quantile_edges(np.array([0.0] * 9 + [1.0]), 10).tolist()  # binary: two bins
    [0.0]
    """
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs, method="inverted_cdf"))


def bin_proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `values` per bin; bin i holds (edges[i-1], edges[i]], the outer bins are open.

    >>> bin_proportions(np.array([1.0, 2, 3, 8, 9, 10]), np.array([5.0])).tolist()
    [0.5, 0.5]
    """
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index sum((a - e) * ln(a / e)), proportions floored at `eps`.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.3, 0.7])), 4)
    0.1695
    """
    e, a = np.maximum(expected, eps), np.maximum(actual, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability_index(reference: np.ndarray, live: np.ndarray, bins: int = 10,
                               eps: float = 1e-4) -> float:
    """PSI of `live` against `reference`, over `bins` quantile bins of the reference.

    >>> live = np.array([1.0, 2, 3, 8, 9, 10, 10, 10, 10, 10])  # 30 % <= 5, reference 50 %
    >>> round(population_stability_index(np.arange(1.0, 11.0), live, bins=2), 4)
    0.1695
    """
    edges = quantile_edges(np.asarray(reference, float), bins)
    return psi(bin_proportions(np.asarray(reference, float), edges),
               bin_proportions(np.asarray(live, float), edges), eps)


def ks_statistic(a: np.ndarray, b: np.ndarray, a_sorted: bool = False) -> float:
    """Two-sample KS statistic D = max |F_a - F_b| (the same as `scipy.stats.ks_2samp`).

    >>> ks_statistic(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6]))
    0.5
    """
    a = a if a_sorted else np.sort(a)
    b = np.sort(b)
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / a.size
    cdf_b = np.searchsorted(b, both, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Asymptotic two-sided p-value of D for samples of n1 and n2 (`ks_2samp` "asymp").

    >>> round(ks_pvalue(0.5, 400, 400), 6)
    0.0
    """
    m, n = max(n1, n2), min(n1, n2)
    return float(np.clip(stats.kstwo.sf(d, round(m * n / (m + n))), 0.0, 1.0))
