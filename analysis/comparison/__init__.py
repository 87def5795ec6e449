"""Layer 6: two embedding spaces side by side (every geometry number, k-NN overlap, task measures).

Imports every layer below it (``report`` for the two geometry reports, ``geometry`` for the task
measures).
"""

from .two_spaces import Comparison, compare
