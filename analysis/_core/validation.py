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
    dtype is converted into a new array; a ``dask.array`` is computed a row chunk at a time
    (:func:`~embgeo.analysis._core.scratch.dask_array_rows`). Raises :class:`EmbeddingInputError` for 1-D or 3-D input,
    empty input, ragged rows and non-numeric values.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    from .scratch import dask_array_rows, is_dask_array  # here: scratch imports this module

    if is_dask_array(x):
        return dask_array_rows(x, what=name)  # a row chunk at a time, not np.asarray's whole array
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
        view = np.empty(x.shape, dtype=np.float32)
        for start, block in iter_row_blocks(x):
            view[start:start + len(block)] = float32_block(block, start, name)
    view.flags.writeable = False
    return view


#: float32's largest finite value and smallest normal one: embgeo computes in float32.
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)


def float32_block(block: np.ndarray, start: int = 0, name: str = "vectors") -> np.ndarray:
    """``block`` (rows ``start``, ``start + 1``, ... of ``name``) as float32 (a new array unless it is one).

    A float64 (or wider) value that float32 cannot hold is refused rather than turned into inf (which
    the NaN check would then misreport) or into 0 (an "all-zero row" that is not one in the file):
    the error names the first rows and the largest or smallest magnitude, and says to rescale.
    """
    if block.dtype.kind != "f" or block.dtype.itemsize <= 4:
        return block if block.dtype == np.float32 else block.astype(np.float32)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        out = block.astype(np.float32)
        magnitude = np.abs(block)
        finite = np.isfinite(block)
        over = (finite & (magnitude > _F32_MAX)).any(axis=1)
        lost = block.any(axis=1) & ~out.any(axis=1) & finite.all(axis=1)
    if over.any():
        rows = start + np.flatnonzero(over)
        top = float(np.max(magnitude[over][finite[over]]))
        raise EmbeddingInputError(
            f"{name}: rows {_first(rows)} hold values beyond float32's range (|value| up to {top:.3g}, the "
            f"limit is {_F32_MAX:.3g}); embgeo computes in float32, so rescale "
            "the vectors first (divide by a constant: cosine does not change)"
        )
    if lost.any():
        rows = start + np.flatnonzero(lost)
        top = float(np.max(magnitude[lost]))
        raise EmbeddingInputError(
            f"{name}: rows {_first(rows)} are non-zero but every value is below float32's smallest number "
            f"(largest |value| {top:.3g}), so in float32 they would be all-zero "
            "vectors; rescale the vectors first (multiply by a constant: cosine does not change)"
        )
    return out


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


def magnitude_limits(dim: int) -> tuple[float, float]:
    """``(smallest, largest)`` row magnitude (largest ``|value|`` of a row) the float32 kernels handle.

    Norms and products sum ``dim`` squares in float32: a row whose largest value exceeds
    ``sqrt(max / (4 dim))`` can overflow them to inf, and one whose largest value is below
    ``sqrt(tiny / eps)`` has squares in float32's subnormal range, where they lose their digits.
    """
    eps = float(np.finfo(np.float32).eps)
    return float(np.sqrt(_F32_TINY / eps)), float(np.sqrt(_F32_MAX / (4.0 * dim)))


def row_peaks(x: np.ndarray) -> np.ndarray:
    """The largest ``|value|`` of each row, read block by block (NaN or inf where a row holds one).

    One pass gives both checks a set needs: a row is finite exactly when its peak is, and the peaks
    are what :func:`check_magnitudes` compares with :func:`magnitude_limits`.
    """
    peaks = np.empty(x.shape[0], dtype=np.float64)
    for start, block in iter_row_blocks(x):
        if block.dtype.kind != "f":  # -min of a signed integer type can wrap (-(-128) is -128 in int8)
            block = block.astype(np.float64)
        with np.errstate(invalid="ignore"):  # two reductions, no |block| temporary: twice as fast
            peaks[start:start + len(block)] = np.maximum(block.max(axis=1), -block.min(axis=1))
    return peaks


def check_magnitudes(x: np.ndarray, name: str = "vectors", *, peaks: np.ndarray | None = None) -> None:
    """Raise when a non-zero row of ``x`` is too large or too small for float32 norms and products.

    Without this, a search at magnitudes of 1e19 (or 1e-25) returns wrong neighbours silently: the
    squared norms overflow (or vanish) in float32. ``peaks`` (from :func:`row_peaks`) saves a pass
    over the rows when the caller has them. The message gives the magnitude found, the range that
    works at this dimension, and the constant to rescale by.
    """
    low, high = magnitude_limits(x.shape[1])
    peaks = row_peaks(x) if peaks is None else peaks
    with np.errstate(invalid="ignore"):
        big, small = peaks > high, (peaks > 0) & (peaks < low)
    if big.any():
        rows, top = np.flatnonzero(big), float(peaks[big].max())
        raise EmbeddingInputError(
            f"{name}: {len(rows)} of {x.shape[0]} rows have values up to {top:.3g} in magnitude (first rows "
            f"{_first(rows)}); in {x.shape[1]} dimensions float32 norms and products overflow above "
            f"{high:.3g}. Rescale the vectors (divide by {top:.0e}; cosine does not change)"
        )
    if small.any():
        rows, bottom = np.flatnonzero(small), float(peaks[small].min())
        raise EmbeddingInputError(
            f"{name}: {len(rows)} of {x.shape[0]} rows have no value above {low:.3g} in magnitude (smallest "
            f"row maximum {bottom:.3g}; first rows {_first(rows)}): their squares fall below float32's "
            f"precision. Rescale the vectors (multiply by {1 / bottom:.0e}; cosine does not change)"
        )


def nonfinite_error(rows: np.ndarray, n: int, name: str = "vectors") -> EmbeddingInputError:
    return EmbeddingInputError(
        f"{name}: {len(rows)} of {n} rows contain NaN or inf values (first rows {_first(rows)}); "
        "fix them at the source, or load with on_invalid='drop' to leave those rows out"
    )


def check_finite(x: np.ndarray, name: str = "vectors") -> None:
    """Raise if any row of ``x`` holds NaN or inf, or values float32 norms cannot square (one pass;
    see :func:`check_magnitudes`)."""
    peaks = row_peaks(x)
    rows = np.flatnonzero(~np.isfinite(peaks))
    if len(rows):
        raise nonfinite_error(rows, x.shape[0], name)
    check_magnitudes(x, name, peaks=peaks)


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
    """Return per-item weights as a float64 vector normalised to sum 1, or raise.

    ``weights`` must hold exactly one finite, non-negative number per row: shape ``(n,)`` or ``(n, 1)``
    (any other shape, e.g. ``(n / 2, 2)``, is refused rather than flattened), a numeric dtype (text,
    even numeric text, and complex numbers are refused), and at least one positive entry. The total
    is taken after dividing by the largest weight, so weights near the float64 maximum (whose plain
    sum overflows to inf) and subnormal ones normalise correctly. The caller's array is not modified.
    """
    try:
        w = np.asarray(weights)
    except ValueError:  # nested sequences of different lengths
        raise EmbeddingInputError(
            f"weights are not one number per row (ragged sequences); give an array of shape ({n},)") from None
    if w.dtype == object:
        if any(isinstance(v, (str, bytes)) for v in w.flat):
            raise EmbeddingInputError(
                "weights hold text, not numbers; give one number per row (e.g. word frequencies)")
        try:
            w = w.astype(np.float64)
        except (TypeError, ValueError):
            raise EmbeddingInputError(
                "weights hold values that are not numbers (None, NA or objects); give one finite "
                "number per row") from None
    if w.dtype.kind not in "biuf":
        raise EmbeddingInputError(
            f"weights have dtype {w.dtype}: they are not numbers; give one finite non-negative "
            "number per row (e.g. word frequencies)")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1:
        raise EmbeddingInputError(
            f"weights have shape {w.shape}; give exactly one number per row: shape ({n},) or ({n}, 1)")
    w = w.astype(np.float64)  # a new array: the caller's is never written
    if w.shape[0] != n:
        raise EmbeddingInputError(f"weights have {w.shape[0]} entries but there are {n} vectors")
    if not np.isfinite(w).all():
        raise EmbeddingInputError(f"weights contain NaN or inf at rows {_first(np.flatnonzero(~np.isfinite(w)))}")
    if (w < 0).any():
        raise EmbeddingInputError(f"weights must be non-negative; negative at rows {_first(np.flatnonzero(w < 0))}")
    peak = w.max() if n else 0.0
    if peak <= 0:
        raise EmbeddingInputError("weights sum to zero; at least one row needs a positive weight")
    w /= peak  # scaled to at most 1 first, so the sum below cannot overflow
    return w / w.sum()


def check_random_state(seed) -> np.random.Generator:
    """A NumPy Generator from None, an int, or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class _NotNumbersError(EmbeddingInputError, TypeError):
    """Estimator input holding objects that are not numbers (a dict, None). Also a TypeError: that is
    what scikit-learn's estimator checks (``check_dtype_object``) expect for such input."""


def validate_estimator_input(est, X, *, reset: bool, min_samples: int = 1) -> np.ndarray:
    """An estimator's input, accepted exactly when :func:`as_float32_matrix` and the finite and
    magnitude checks of a set (:func:`check_finite`) accept it; scikit-learn's bookkeeping on top.

    A float64 array is returned as it is (no copy; the estimators compute in float64, and their
    whitening amplifies what float32 rounding would add) after a block-by-block check that float32
    can hold every value; every other input goes through :func:`as_float32_matrix` (a torch tensor
    that requires grad is detached; bool, text, complex, ragged, 1-D and empty input are refused).
    ``reset=True`` (in ``fit``) records ``n_features_in_`` and the feature names of a DataFrame;
    ``reset=False`` checks them. Every refusal is an :class:`EmbeddingInputError` naming the
    estimator; where scikit-learn's estimator checks look for their own words ("Reshape your data",
    "Complex data not supported", "0 feature(s)", "argument must be a string or a number") the
    message holds them too. The caller's data is never written.
    """
    from sklearn.utils.validation import validate_data

    who = type(est).__name__
    name = f"{who} input"
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # a torch tensor, as load reads it
        tensor = X.detach().cpu()
        try:
            X = tensor.numpy()
        except TypeError:  # bfloat16 and friends have no NumPy dtype: widen (a new tensor)
            X = tensor.float().numpy()
    if type(X).__module__.startswith("scipy.sparse"):
        raise EmbeddingInputError(f"{who}: sparse input is not supported; pass a dense array (X.toarray())")
    frame = X if hasattr(X, "columns") and hasattr(X, "iloc") else None  # keeps its feature names
    values = X
    if not isinstance(values, np.ndarray):
        try:
            values = np.asarray(X)  # lists, DataFrames, objects with __array__
        except (TypeError, ValueError):
            values = X  # ragged rows: as_float32_matrix words it
    is_array = isinstance(values, np.ndarray)
    if is_array and values.ndim == 2 and 0 in values.shape:
        zero_rows = values.shape[0] == 0
        raise EmbeddingInputError(
            f"{name} is empty: 0 {'sample' if zero_rows else 'feature'}(s) (shape={values.shape}) while a "
            f"minimum of {min_samples if zero_rows else 1} is required.")
    try:
        if is_array and values.ndim == 2 and values.dtype == np.float64:
            for start, block in iter_row_blocks(values):
                float32_block(block, start, name)  # raises where float32 cannot hold a value
            x = values
        else:
            x = as_float32_matrix(values, name=name)
    except EmbeddingInputError as exc:
        if is_array and values.ndim == 1:
            raise EmbeddingInputError(f"{exc}; Reshape your data to one row per vector") from None
        if is_array and values.dtype.kind == "c":
            raise EmbeddingInputError(f"{exc}: Complex data not supported") from None
        if is_array and values.dtype == object:
            try:
                values.astype(np.float64)
            except TypeError as not_number:  # e.g. "float() argument must be a string or a real number"
                raise _NotNumbersError(f"{exc}: {not_number}") from None
            except ValueError:
                pass
        raise
    check_finite(x, name)
    if x.shape[0] < min_samples:
        raise EmbeddingInputError(
            f"{name}: {x.shape[0]} sample(s) (shape={x.shape}) while a minimum of {min_samples} is required.")
    try:  # n_features_in_ and feature names only: the array is checked above
        validate_data(est, x if frame is None else frame, reset=reset, skip_check_array=True)
    except ValueError as exc:
        raise EmbeddingInputError(f"{who}: {exc}") from None
    return x
