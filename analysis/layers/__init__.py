"""Layer 5 (beside report): the geometry of a model's layers over the same texts.

``extract`` runs a transformers model once with ``output_hidden_states=True`` and pools every layer's
states per text (mean, CLS) or per token into one stacked float32 matrix (a scratch map when large);
``profile`` analyses one layer at a time with the geometry estimators and returns :class:`LayerGeometry`,
whose curves show isotropy, intrinsic dimension, hubness and neighbourhoods across depth. Imports
``_core``, ``neighbors``, ``embeddings``, ``embed`` (the bundled model and the text check) and ``geometry``.
"""

from .extract import LayerStates, layer_states
from .profile import LayerGeometry, layer_geometry
