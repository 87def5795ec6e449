"""Input validation shared by every entry point.

Every check raises :class:`EmbeddingInputError` with a message that names the problem and where it
is (how many rows, the first offending indices), and never modifies the caller's array. Checks that
must look at every value (NaN/inf, zero rows) read the data in row blocks so that a memory-mapped file
larger than RAM is scanned without being loaded whole.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

#: The similarities every search and statistic accepts.
METRICS = ("cosine", "dot", "euclidean")
#: Those that define a distance (cosine: the chord between unit vectors). ``dot`` ranks by inner
#: product, which is not a distance, so distance-based estimators refuse it.
DISTANCE_METRICS = ("cosine", "euclidean")

#: Rows read at a time when a check has to look at every value; 65,536 x 384 float32 is ~100 MB.
SCAN_BLOCK_ROWS = 65_536


class EmbeddingInputError(ValueError):
    """Raised for input that embgeo cannot analyse as given (wrong shape, dtype or values)."""


def _first(indices: np.ndarray, most: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:most])
    return f"[{shown}{', ...' if len(indices) > most else ''}]"


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is one of :data:`METRICS`, else raise a clear error."""
    if metric not in METRICS:
        raise EmbeddingInputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def check_distance_metric(metric: str, what: str) -> str:
    """Return ``metric`` if it defines a distance; for ``"dot"`` raise, saying that ``what`` needs one."""
    metric = check_metric(metric)
    if metric not in DISTANCE_METRICS:
        raise EmbeddingInputError(
            f"{what} needs a distance, and metric='dot' ranks by inner product, which is not one; use "
            "metric='cosine' (chord distance between unit vectors) or 'euclidean'"
        )
    return metric


def as_float32_matrix(x, *, name: str = "vectors") -> np.ndarray:
    """Return ``x`` as a read-only 2-D float32 array without touching the caller's data.

    A float32 input (including a memory map) is returned as a read-only *view*; any other numeric
    dtype is converted into a new array. Raises :class:`EmbeddingInputError` for 1-D or 3-D input,
    empty input, ragged rows and non-numeric values.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except ValueError as exc:  # numpy refuses inhomogeneous nested sequences
            raise EmbeddingInputError(
                f"{name}: rows have different lengths (ragged input); every vector must have the "
                f"same dimension ({exc})"
            ) from None
    if x.dtype == object:
        # Only a 1-D object array can hold rows of different lengths; strings are values, not rows.
        cells = x[:10_000] if x.ndim == 1 else []
        lengths = {len(r) for r in cells if hasattr(r, "__len__") and not isinstance(r, (str, bytes))}
        if len(lengths) > 1:
            raise EmbeddingInputError(
                f"{name}: rows have different lengths (ragged input): saw lengths "
                f"{sorted(lengths)[:6]}; every vector must have the same dimension"
            )
        try:
            x = x.astype(np.float32)
        except (TypeError, ValueError):
            raise EmbeddingInputError(f"{name}: values are not numeric (object dtype)") from None
    if x.ndim != 2:
        hint = (
            " (a single vector? pass it as x[None, :])" if x.ndim == 1
            else " (flatten the leading axes, e.g. x.reshape(-1, x.shape[-1]))" if x.ndim > 2 else ""
        )
        raise EmbeddingInputError(
            f"{name} must be a 2-D array of shape (n_vectors, dim); got {x.ndim}-D with shape "
            f"{x.shape}{hint}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise EmbeddingInputError(f"{name} is empty: shape {x.shape}")
    if x.dtype.kind == "b" or x.dtype.kind not in "fiu":
        raise EmbeddingInputError(
            f"{name}: dtype {x.dtype} is not a numeric vector type (expected float or integer)"
        )
    if x.dtype == np.float32:
        view = x.view()
    else:
        view = x.astype(np.float32)
    view.flags.writeable = False
    return view


def iter_row_blocks(x: np.ndarray, block_rows: int = SCAN_BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, x[start:start + block_rows])`` over the rows of ``x``."""
    for start in range(0, x.shape[0], block_rows):
        yield start, x[start:start + block_rows]


def find_nonfinite_rows(x: np.ndarray) -> np.ndarray:
    """Indices of rows that hold a NaN or an infinity, scanned block by block."""
    bad = [start + np.flatnonzero(~np.isfinite(block).all(axis=1)) for start, block in iter_row_blocks(x)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def find_zero_rows(x: np.ndarray) -> np.ndarray:
    """Indices of rows whose every entry is zero (no direction, so no cosine)."""
    zero = [start + np.flatnonzero(~block.any(axis=1)) for start, block in iter_row_blocks(x)]
    return np.concatenate(zero) if zero else np.empty(0, dtype=np.int64)


def nonfinite_error(rows: np.ndarray, n: int, name: str = "vectors") -> EmbeddingInputError:
    return EmbeddingInputError(
        f"{name}: {len(rows)} of {n} rows contain NaN or inf values (first rows {_first(rows)}); "
        "fix them at the source, or load with on_invalid='drop' to leave those rows out"
    )


def check_finite(x: np.ndarray, name: str = "vectors") -> None:
    """Raise if any row of ``x`` holds NaN or inf."""
    rows = find_nonfinite_rows(x)
    if len(rows):
        raise nonfinite_error(rows, x.shape[0], name)


def check_no_zero_rows(x: np.ndarray, metric: str, name: str = "vectors") -> None:
    """Under the cosine metric a zero vector has no direction: raise, naming the rows."""
    if metric != "cosine":
        return
    rows = find_zero_rows(x)
    if len(rows):
        raise EmbeddingInputError(
            f"{name}: {len(rows)} of {x.shape[0]} rows are all-zero vectors (first rows "
            f"{_first(rows)}); cosine similarity is undefined for them. Remove them, or use "
            "metric='euclidean' or 'dot'"
        )


def check_same_dim(corpus: np.ndarray, queries: np.ndarray) -> None:
    if corpus.shape[1] != queries.shape[1]:
        raise EmbeddingInputError(
            f"queries have dimension {queries.shape[1]} but the corpus has dimension "
            f"{corpus.shape[1]}; both must come from the same embedding model"
        )


def check_k(k: int, n_available: int, *, what: str = "k", context: str = "neighbours") -> int:
    """Check that ``k`` is a positive integer and that there are enough points for it."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise EmbeddingInputError(f"{what} must be an integer, got {k!r}")
    if k < 1:
        raise EmbeddingInputError(f"{what} must be at least 1, got {k}")
    if k > n_available:
        raise EmbeddingInputError(
            f"too few points for {what}={k}: only {n_available} candidate {context} are available"
        )
    return int(k)


def check_weights(weights, n: int) -> np.ndarray:
    """Return per-item weights as a float64 vector normalised to sum 1, or raise."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != n:
        raise EmbeddingInputError(f"weights have {w.shape[0]} entries but there are {n} vectors")
    if not np.isfinite(w).all():
        raise EmbeddingInputError(f"weights contain NaN or inf at rows {_first(np.flatnonzero(~np.isfinite(w)))}")
    if (w < 0).any():
        raise EmbeddingInputError(f"weights must be non-negative; negative at rows {_first(np.flatnonzero(w < 0))}")
    total = w.sum()
    if total <= 0:
        raise EmbeddingInputError("weights sum to zero")
    return w / total


def check_random_state(seed) -> np.random.Generator:
    """A NumPy Generator from None, an int, or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def validate_estimator_input(est, X, *, reset: bool, min_samples: int = 1) -> np.ndarray:
    """scikit-learn's ``validate_data`` for an estimator's input, its ValueErrors re-raised as
    :class:`EmbeddingInputError` prefixed with the estimator's name (so the message says where).

    float32 and float64 input are kept as they are (no copy); other numeric types become float64.
    ``reset=True`` (in ``fit``) records ``n_features_in_``; ``reset=False`` checks against it.
    """
    from sklearn.utils.validation import validate_data

    try:
        return validate_data(est, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=min_samples)
    except EmbeddingInputError:
        raise
    except ValueError as exc:
        raise EmbeddingInputError(f"{type(est).__name__}: {exc}") from None
