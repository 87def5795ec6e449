"""Layer 6: two embedding spaces side by side (every geometry number, k-NN overlap, task measures), and how
similar two representations of the same items are (CKA, CCA, Procrustes, mutual k-NN, RSA; the matrix of
one statistic over many layers or models).

Imports every layer below it (``report`` for the two geometry reports, ``geometry`` for the task
measures).
"""

from .two_spaces import Comparison, compare
from .similarity import (
    LINEAR_STATISTICS,
    RepresentationSimilarity,
    check_same_items,
    linear_statistics,
    representation_similarity,
)
from .matrix import MATRIX_STATISTICS, SimilarityMatrix, similarity_matrix
