"""One reader per file format; each returns what it found as :class:`~.tables.Loaded`.

:data:`FORMATS` lists the extensions :func:`embgeo.analysis.io.load` dispatches on.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._core import EmbeddingInputError, as_float32_matrix, check_finite, check_same_dim
from ..embeddings import ANNBenchmark
from .tables import (
    VECTOR_NAMES,
    Loaded,
    arrow_is_list,
    arrow_vectors,
    frame,
    from_frame,
    is_name_list,
    listing,
    split_rest,
    tensor_to_numpy,
)

#: ``.npz`` keys taken as item weights without being asked (an explicit key list is unambiguous).
NPZ_WEIGHT_NAMES = ("weights", "frequencies")
#: ann-benchmarks ``distance`` attribute -> embgeo metric.
ANN_METRICS = {"angular": "cosine", "cosine": "cosine", "euclidean": "euclidean", "l2": "euclidean",
               "dot": "dot", "ip": "dot", "inner_product": "dot"}
#: TEXMEX component type per extension (the row header is always a little-endian int32).
TEXMEX_DTYPES = {".fvecs": np.dtype("<f4"), ".bvecs": np.dtype("u1"), ".ivecs": np.dtype("<i4")}


def _corrupt(path: Path, what: str, exc: Exception) -> EmbeddingInputError:
    return EmbeddingInputError(
        f"{path}: could not read it as {what} (truncated or corrupt?): {type(exc).__name__}: {exc}")


def _pick_key(keys: list[str], arrays: Callable[[str], Any], vectors, path: Path, kind: str) -> str:
    """The key holding the vectors: the named one, a conventional name, or the only 2-D float one."""
    if vectors is not None:
        if vectors not in keys:
            raise EmbeddingInputError(f"no {kind} {vectors!r}; {kind}s are {listing(keys)}")
        return vectors
    for candidate in VECTOR_NAMES:
        if candidate in keys:
            return candidate
    # prefer 2-D float arrays: an integer matrix beside them is usually neighbour ids
    described = {k: arrays(k) for k in keys}
    matrices = [k for k, (shape, is_float) in described.items() if len(shape) == 2 and is_float]
    if not matrices:
        matrices = [k for k, (shape, _) in described.items() if len(shape) == 2]
    if len(matrices) == 1:
        return matrices[0]
    if not matrices:
        raise EmbeddingInputError(f"found no 2-D numeric {kind} among {listing(keys)}; name one with vectors=")
    raise EmbeddingInputError(
        f"several 2-D {kind}s could be the vectors: {listing(matrices)}; choose one with vectors=")


def _read_npy(path, *, vectors, metadata, weights, mmap) -> Loaded:
    _no_names(path, vectors, metadata, weights)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":  # else np.load would try to unpickle it and blame allow_pickle
        raise EmbeddingInputError("not a .npy file (it does not start with the NumPy magic bytes)")
    try:
        x = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc):
            raise EmbeddingInputError("holds Python objects (object dtype), not numeric vectors") from None
        raise _corrupt(path, ".npy", exc) from None
    except (OSError, EOFError) as exc:
        raise _corrupt(path, ".npy", exc) from None
    if x.dtype.kind not in "fiu" and x.dtype.kind != "b":
        raise EmbeddingInputError(f"dtype {x.dtype} is not a numeric vector type")
    # float32 stays a read-only memory map; other dtypes are converted into memory once
    return Loaded(x)


def _no_names(path, vectors, metadata, weights):
    if vectors is not None or isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError(
            f"{path.suffix} files hold a single array; vectors=, and weights=/metadata= given as "
            "names, do not apply (pass the arrays themselves)")


def _read_npz(path, *, vectors, metadata, weights, mmap) -> Loaded:
    import zipfile

    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _corrupt(path, ".npz", exc) from None
    with z:
        keys = list(z.files)
        try:
            arrays = {k: z[k] for k in keys}
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise EmbeddingInputError("an array in the file holds Python objects (object dtype)") from None
            raise _corrupt(path, ".npz", exc) from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _corrupt(path, ".npz", exc) from None
    key = _pick_key(keys, lambda k: (arrays[k].shape, arrays[k].dtype.kind == "f"), vectors, path, "array")
    x = arrays.pop(key)
    n = x.shape[0] if x.ndim >= 1 else 0
    w = None
    if isinstance(weights, str):
        if weights not in arrays:
            raise EmbeddingInputError(f"no array {weights!r} for weights; arrays are {listing(keys)}")
        w = arrays.pop(weights)
    else:
        for k in NPZ_WEIGHT_NAMES:
            if k in arrays and arrays[k].ndim == 1 and len(arrays[k]) == n:
                w = arrays.pop(k)
                break
    cols = {k: a for k, a in arrays.items() if a.ndim == 1 and len(a) == n}
    if is_name_list(metadata):
        missing = [c for c in metadata if c not in cols]
        if missing:
            raise EmbeddingInputError(
                f"no 1-D array of length {n} named {listing(missing)} for metadata; arrays are {listing(keys)}")
        cols = {c: cols[c] for c in metadata}
    return Loaded(x, frame(cols), w)


def _read_parquet(path, *, vectors, metadata, weights, mmap) -> Loaded:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, "Parquet", exc) from None
    names = table.column_names
    listlike = [c for c in names if arrow_is_list(table.schema.field(c).type)]
    if isinstance(vectors, str):
        if vectors not in names:
            raise EmbeddingInputError(f"no column {vectors!r} for vectors; columns are {listing(names)}")
        col = vectors if vectors in listlike else None
    elif vectors is None:
        named = [c for c in listlike if c.lower() in VECTOR_NAMES]
        if len(listlike) > 1 and len(named) != 1:
            raise EmbeddingInputError(
                f"several columns hold lists {listing(listlike)}; choose one with vectors=")
        col = named[0] if len(named) == 1 else (listlike[0] if listlike else None)
    else:
        col = None
    if col is None:  # numeric columns, or a named non-list column: the table path handles it
        return from_frame(table.to_pandas(), vectors=vectors, metadata=metadata, weights=weights,
                           where="table")
    x = arrow_vectors(table.column(col), col)
    rest = table.drop_columns([col]).to_pandas()
    return split_rest(rest, x, metadata=metadata, weights=weights)


def _read_csv(path, *, vectors, metadata, weights, mmap) -> Loaded:
    import pandas as pd

    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        df = pd.read_csv(path, sep=sep)
        if len(df.columns) and all(_is_number(c) for c in df.columns):
            df = pd.read_csv(path, sep=sep, header=None)  # no header row: the first row is data
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _corrupt(path, "CSV" if sep == "," else "TSV", exc) from None
    if df.empty:
        raise EmbeddingInputError("has a header but no data rows")
    return from_frame(df, vectors=vectors, metadata=metadata, weights=weights, where="table")


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


def _read_safetensors(path, *, vectors, metadata, weights, mmap) -> Loaded:
    from safetensors import safe_open

    if isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError("weights=/metadata= given as names do not apply to .safetensors (pass the arrays)")
    try:
        with safe_open(str(path), framework="np") as f:
            keys = list(f.keys())
            slices = {k: f.get_slice(k) for k in keys}
            key = _pick_key(keys, lambda k: (slices[k].get_shape(), "F" in slices[k].get_dtype()),
                            vectors, path, "tensor")
            try:
                x = f.get_tensor(key)
            except (TypeError, ValueError):  # bfloat16 has no NumPy dtype: read it with torch
                x = None
    except EmbeddingInputError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError, ValueError)
        raise _corrupt(path, ".safetensors", exc) from None
    if x is None:
        with safe_open(str(path), framework="pt") as f:
            x = tensor_to_numpy(f.get_tensor(key))
    return Loaded(x)


def _read_texmex(path, *, vectors, metadata, weights, mmap) -> Loaded:
    """TEXMEX ``.fvecs``/``.bvecs``/``.ivecs``: rows of (int32 dim, dim values), little-endian."""
    _no_names(path, vectors, metadata, weights)
    kind = TEXMEX_DTYPES[path.suffix.lower()]
    size = path.stat().st_size
    if size < 4:
        raise EmbeddingInputError(f"{size} bytes is shorter than one row header (4 bytes): truncated")
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    if d <= 0 or d > 1_000_000:
        raise EmbeddingInputError(
            f"the first row header says dimension {d}; not a valid {path.suffix} file")
    row = np.dtype([("dim", "<i4"), ("vec", kind, (d,))])
    n, extra = divmod(size, row.itemsize)
    if extra:
        raise EmbeddingInputError(
            f"file size {size} bytes is not a whole number of rows of {row.itemsize} bytes "
            f"(dimension {d}): truncated, or rows of different dimensions")
    rows = np.memmap(path, dtype=row, mode="r", shape=(n,)) if mmap else np.fromfile(path, dtype=row)
    bad = _texmex_bad_headers(rows["dim"], d)
    if len(bad):
        raise EmbeddingInputError(
            f"rows {listing(bad[:5])} have dimension headers {listing(rows['dim'][bad[:5]])}, "
            f"but row 0 says {d}; every row must have the same dimension")
    return Loaded(rows["vec"])  # a strided, read-only view of the file for .fvecs


def _texmex_bad_headers(dims: np.ndarray, d: int, block: int = 1 << 20) -> np.ndarray:
    bad = [s + np.flatnonzero(dims[s:s + block] != d) for s in range(0, len(dims), block)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def _read_hdf5(path, *, vectors, metadata, weights, mmap) -> Loaded:
    import h5py

    if isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError("weights=/metadata= given as names do not apply to .hdf5 (pass the arrays)")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise _corrupt(path, "HDF5", exc) from None
    with f:
        keys = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
        key = vectors if vectors is not None else ("train" if "train" in keys else None)
        if key is None:
            key = _pick_key(keys, lambda k: (f[k].shape, f[k].dtype.kind == "f"), None, path, "dataset")
        elif key not in keys:
            raise EmbeddingInputError(f"no dataset {key!r}; datasets are {listing(keys)}")
        try:
            x = _h5_array(f[key], path, mmap)
            queries = _h5_array(f["test"], path, False) if "test" in keys else None
            truth = f["neighbors"][()] if "neighbors" in keys else None
            dist = f["distances"][()] if "distances" in keys else None
        except OSError as exc:
            raise _corrupt(path, "HDF5", exc) from None
        metric = _ann_metric(f.attrs.get("distance"))
    benchmark = None
    if queries is not None:
        q = as_float32_matrix(queries, name="queries (test)")
        if x.ndim == 2:
            check_same_dim(x, q)
        check_finite(q, "queries (test)")
        if truth is not None and truth.shape[0] != q.shape[0]:
            raise EmbeddingInputError(
                f"'neighbors' has {truth.shape[0]} rows but there are {q.shape[0]} queries")
        benchmark = ANNBenchmark(queries=q, neighbors=truth, distances=dist, metric=metric)
    return Loaded(x, benchmark=benchmark)


def _h5_array(ds, path: Path, mmap: bool) -> np.ndarray:
    """A dataset as an array; contiguous uncompressed float32 data is memory-mapped from the file."""
    if mmap and ds.chunks is None and ds.compression is None and ds.dtype == np.dtype("<f4"):
        offset = ds.id.get_offset()
        if offset is not None:
            return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
    return ds[()]


def _ann_metric(raw) -> str | None:
    if raw is None:
        return None
    name = raw.decode() if isinstance(raw, bytes) else str(raw)
    metric = ANN_METRICS.get(name.lower())
    if metric is None:
        warnings.warn(f"ann-benchmarks distance {name!r} has no embgeo metric; benchmark.metric is None",
                      stacklevel=4)
    return metric


READERS: dict[str, Callable[..., Loaded]] = {
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
    ".csv": _read_csv,
    ".tsv": _read_csv,
    ".safetensors": _read_safetensors,
    ".fvecs": _read_texmex,
    ".bvecs": _read_texmex,
    ".ivecs": _read_texmex,
    ".hdf5": _read_hdf5,
    ".h5": _read_hdf5,
}

#: The file extensions :func:`load` reads.
FORMATS: tuple[str, ...] = tuple(READERS)
