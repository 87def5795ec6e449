"""Layer 3 (beside io): post-processing transforms as scikit-learn transformers, and the registry of
their names.

Every transform follows the scikit-learn contract: the constructor only stores parameters,
``fit(X, y=None, sample_weight=None)`` learns attributes whose names end in ``_`` and returns
``self``, ``transform`` never writes to its input and returns float32. ``sample_weight`` gives the
item probabilities p of weighted (Zipfian) statistics. ``linear`` (centring, L2, all-but-the-top,
PCA/ZCA and Zipfian whitening), ``phis`` (PHI-S), ``rogue`` (rogue dimensions), ``registry``
(:data:`TRANSFORMS`, :func:`apply_transform`, :func:`fit_transformer`). Imports ``_core`` and
``embeddings``.
"""

from .linear import AllButTheTop, Center, L2Normalize, Whitening, ZipfianWhitening
from .phis import PHIS, equal_diagonal_rotation, hadamard
from .registry import TRANSFORMS, apply_transform, fit_transformer
from .rogue import RogueDimensions
