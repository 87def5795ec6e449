"""Layer 4 (beside geometry): vector-index statistics, measured against exact ground truth.

queries (where the queries come from), ground_truth (exact neighbours and the recall rules),
faiss_indexes (build and sweep HNSW, IVF, IVF-PQ, 8-bit scalar), difficulty (recall by query local
ID), reachability, balance (IVF lists), scaling (recall versus corpus size), compression (recall per
byte without an index), report (:func:`index_report`, :func:`transform_effect`) and live (the user's own
vector database searched through its API: :func:`live_index_report`). Imports ``_core``, ``neighbors``,
``embeddings``, ``transforms`` and ``io`` (the database readers and search handles).
"""

from .balance import ListBalance, ivf_balance, list_balance
from .compression import CompressionReport, CompressionSetting, compression_report
from .difficulty import QueryDifficulty, query_difficulty
from .faiss_indexes import INDEX_KINDS, IndexSetting, IndexSweep, build_index, index_sweep, pareto_front
from .ground_truth import GroundTruth, ann_units, ground_truth, recall_distance_rule
from .live import LiveIndexReport, live_index_report
from .queries import QuerySplit, split_queries
from .reachability import Reachability, reachability
from .report import IndexReport, TransformEffect, index_report, transform_effect
from .scaling import IndexScaling, index_scaling
