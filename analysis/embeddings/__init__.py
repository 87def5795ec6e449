"""Layer 2: :class:`EmbeddingSet`, the container every analysis takes, with the shared neighbour cache.

Vectors (validated once, read-only, a memory map kept as one), metadata, item weights, and the k-NN
tables and moments computed on them, so that every statistic of a set reads one search.
Imports :mod:`.._core` and :mod:`..neighbors`.
"""

from .embedding_set import ANNBenchmark, EmbeddingSet, as_embedding_set
