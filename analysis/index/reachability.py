"""Reachability: how much of the corpus can ever come back as someone's nearest neighbour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import Result, hidden, metric as _field
from ..embeddings import EmbeddingSet
from ..neighbors import k_occurrence
from .ground_truth import GroundTruth


@dataclass(frozen=True, repr=False)
class Reachability(Result):
    """How much of the corpus can ever come back as someone's nearest neighbour."""

    _title = "reachability"
    k: int = _field("Neighbours per query.")
    never_retrieved_rate: float = _field("Share of the corpus in no query's true top-k (this query set).")
    never_retrieved_expected: float = _field(
        "The same share if each query's top-k were a uniform random k of the corpus: (1 - k/n)^m. A "
        "rate far above it means the queries crowd onto few items (hubs).")
    corpus_never_retrieved_rate: float | None = _field(
        "Share of the corpus in no other item's top-k with the corpus as queries (antihubs, N_k = 0).",
        "Radovanovic, Nanopoulos, Ivanovic, JMLR 2010")
    corpus_never_retrieved_examples: list = _field("Labels of a few never-retrieved corpus items.",
                                                   default_factory=list)
    never_retrieved_rows: np.ndarray = hidden()
    corpus_never_retrieved_rows: np.ndarray | None = hidden()


def reachability(ground: GroundTruth, eset: EmbeddingSet | None = None, *, corpus_as_queries: bool = True,
                 n_examples: int = 10) -> Reachability:
    """Share of the corpus never in anyone's top-k: for the query set, and for the corpus as queries.

    The corpus-as-queries table comes from ``eset.neighbors(k, metric=...)`` (the shared cache), so a
    full report computes it once. Row numbers are those of ``eset``.

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space", JMLR 2010 (k-occurrence, antihubs).
    """
    k = ground.k
    occ = k_occurrence(ground.truth, ground.n_corpus)
    never = ground.corpus_rows[occ == 0]
    expected = (1.0 - k / ground.n_corpus) ** ground.n_queries
    corpus_rate = corpus_rows = None
    examples: list = []
    if corpus_as_queries and eset is not None:
        table = eset.neighbors(k, metric=ground.metric)
        corpus_occ = k_occurrence(table, eset.n)
        corpus_rows = np.flatnonzero(corpus_occ == 0)
        corpus_rate = float(len(corpus_rows) / eset.n)
        examples = [eset.label(int(i)) for i in corpus_rows[:n_examples]]
    return Reachability(
        k=k, never_retrieved_rate=float(len(never) / ground.n_corpus), never_retrieved_expected=float(expected),
        corpus_never_retrieved_rate=corpus_rate, corpus_never_retrieved_examples=examples,
        never_retrieved_rows=never, corpus_never_retrieved_rows=corpus_rows,
    )
