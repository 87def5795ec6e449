import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))


@pytest.fixture(scope="module")
def clustered():
    """300 points in 6 clusters with planted hubs, texts and labels: small enough for fast tests."""
    from embgeo.analysis import EmbeddingSet
    from embgeo.analysis.datasets import make_planted_hubs

    x, _ = make_planted_hubs(300, 16, 6, random_state=0)
    md = pd.DataFrame({"text": [f"item {i}" for i in range(300)],
                       "label": [f"group {i % 3}" for i in range(300)],
                       "score": np.linspace(0.0, 1.0, 300)})
    return EmbeddingSet(x, md, name="clustered")
