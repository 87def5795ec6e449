"""Layer 6 (beside comparison): two *different* sets in one space, a query set against the corpus it is
searched in: the centroid and modality gap, the covariance difference (Frobenius, Frechet /
Bures-Wasserstein, principal angles), two-sample tests (kernel MMD with a permutation p-value, the
classifier test), per-query out-of-distribution scores (k-th neighbour distance, Mahalanobis), the
retrieval margin and an index's recall by shift bucket, and the shift after the candidate transforms.

``gaussian`` (moments compared), ``two_sample`` (MMD, classifier test), ``retrieval`` (index recall by
bucket, transform rows, each transform's overlap@k and index recall), ``verdicts`` and ``report``
(:func:`shift_report`). Imports ``_core``, ``neighbors``, ``embeddings``, ``transforms``, ``index`` and
``report`` (for the verdict cards).
"""

from .gaussian import MahalanobisMap, frechet_distance, principal_angles
from .report import MIN_TEST_ROWS, ShiftReport, shift_report
from .two_sample import classifier_test, mmd_test
