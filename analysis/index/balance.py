"""Balance of an IVF index's inverted lists (methods sheet, "IVF balance")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, hidden, metric as _field


@dataclass(frozen=True, repr=False)
class ListBalance(Result):
    """How evenly an IVF index spreads the corpus over its inverted lists."""

    _title = "IVF list balance"
    n_lists: int = _field("Inverted lists.")
    imbalance_factor: float = _field("n_lists * sum s^2 / (sum s)^2: expected list scan cost relative to "
                                     "equal lists (1 = perfect).", "Jegou, Douze, Schmid, TPAMI 2011; faiss")
    entropy: float = _field("Shannon entropy (nats) of the list shares s / n.")
    normalised_entropy: float = _field("Entropy / log(n_lists) (1 = perfectly even).")
    empty_lists: int = _field("Lists holding no vector.")
    largest_list_share: float = _field("Share of the corpus in the largest list.")
    sizes: np.ndarray = hidden()


def list_balance(sizes) -> ListBalance:
    """Balance statistics of inverted-list sizes ``s_j`` (methods sheet, "IVF balance").

    Example
    -------
    >>> list_balance([3, 1, 0, 0]).imbalance_factor
    2.5
    """
    s = np.asarray(sizes, dtype=np.float64).ravel()
    if s.size == 0 or (s < 0).any() or s.sum() <= 0:
        raise EmbeddingInputError("list sizes must be non-negative with a positive total")
    total, n_lists = s.sum(), s.size
    p = s / total
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    return ListBalance(
        n_lists=int(n_lists), imbalance_factor=float(n_lists * (s * s).sum() / total**2), entropy=entropy,
        normalised_entropy=entropy / math.log(n_lists) if n_lists > 1 else 1.0,
        empty_lists=int((s == 0).sum()), largest_list_share=float(p.max()), sizes=s.astype(np.int64),
    )


def ivf_balance(index) -> ListBalance:
    """:func:`list_balance` of a faiss IVF index, read from its inverted lists."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    return list_balance([ivf.invlists.list_size(j) for j in range(ivf.nlist)])
