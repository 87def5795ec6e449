"""Layer 4 (beside index): the geometry statistics of one embedding set, each read off the set's moments
and its shared neighbour table.

isotropy (mean cosine, IsoScore, partition isotropy, spectrum, rogue dimensions); dimension_estimators
(TwoNN, MLE, local ID), intrinsic_dim (the report, with PCA) and scale (decimation and GRIDE curves);
hubness; concentration (relative contrast, expansion); similarity (random pairs against k-th
neighbours); cosine_dot; duplicates; hubness_reduction (re-ranking estimators); retrieval (task-level
measures); projection (2-D/3-D maps with trust scores). Imports ``_core``, ``neighbors`` and
``embeddings``.
"""

from .concentration import ConcentrationReport, concentration_from_table, concentration_report
from .cosine_dot import CosineDotReport, cosine_dot_from_tables, cosine_vs_dot
from .duplicates import DUPLICATE_COSINE, NearDuplicateReport, near_duplicates, near_duplicates_from_table, wilson_interval
from .hubness import HubnessReport, hubness_report, robin_hood_index
from .hubness_reduction import HubnessReduction, HubnessReductionReport, hubness_reduction_report, reduce_hubness
from .dimension_estimators import MLEResult, TwoNNResult, local_intrinsic_dimension, mle_dimension, twonn
from .intrinsic_dim import IntrinsicDimensionReport, intrinsic_dimension
from .isotropy import IsotropyReport, isoscore_from_eigenvalues, isotropy_report
from .projection import Projection, project
from .retrieval import (
    RetrievalReport,
    knn_classification_accuracy,
    ndcg_at,
    neighborhood_preservation,
    recall_at,
    retrieval_report,
)
from .similarity import SimilarityDistribution, similarity_distribution, similarity_from_kth
