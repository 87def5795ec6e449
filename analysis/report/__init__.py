"""Layer 5: the full geometry report (every statistic of a set from one shared neighbour table), the
sampled report (streamed moments, a query sample and a subsample, with intervals, for sets too large for
a whole graph), its verdicts (thresholds, advice, references) and its standalone HTML page.

Imports the layers below (``_core``, ``neighbors``, ``embeddings``, ``geometry``).
"""

from .full_report import FULL_SCALE_CURVE_MAX_N, GRIDE_MAX_RANK, GeometryReport, geometry_report
from .sampled import DEFAULT_SUBSAMPLE, sampled_report
from .verdicts import Verdict, verdicts, verdicts_html
