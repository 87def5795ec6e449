"""embgeo.analysis: embedding geometry, computed (no UI imports here).

Data flows one way: load -> validate -> (transform) -> shared k-NN cache -> reports.
Implementations live in private modules and are re-exported here; `io`, `datasets` and `embed` are
public modules in their own right.
"""

from ._embedding_set import ANNBenchmark, EmbeddingSet
from ._knn import Neighbors, approximate_knn, exact_knn, recall_at_k
from ._results import Result
from ._validation import EmbeddingInputError

__all__ = [
    "ANNBenchmark",
    "EmbeddingInputError",
    "EmbeddingSet",
    "Neighbors",
    "Result",
    "approximate_knn",
    "exact_knn",
    "recall_at_k",
]
