"""One reader per file format; each returns what it found as :class:`~.tables.Loaded`.

:data:`FORMATS` lists the extensions :func:`embgeo.analysis.io.load` dispatches on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._core import (
    EmbeddingInputError,
    as_float32_matrix,
    check_finite,
    check_same_dim,
    check_weights,
    float32_matrix_from_blocks,
    iter_row_blocks,
)
from ..embeddings import ANNBenchmark
from .tables import (
    VECTOR_NAMES,
    Loaded,
    arrow_is_list,
    arrow_vectors,
    check_csv_widths,
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
    detail = " ".join(str(exc).split())  # one line: some libraries' messages span several
    return EmbeddingInputError(
        f"{path}: could not read it as {what} (truncated or corrupt?): {type(exc).__name__}: {detail}")


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
    x = open_npy(path, mmap)
    # float32 stays a read-only memory map of the file; other dtypes are converted block by block (into
    # a scratch map on disk when large: a float16 file never becomes a full float32 copy in RAM)
    return Loaded(_converted(x, path) if mmap else x)


def open_npy(path, mmap: bool = True) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped read-only (or read, with ``mmap=False``), as stored:
    refused when it is not a .npy file, holds Python objects, is truncated, or is not numeric."""
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":  # else np.load would try to unpickle it and blame allow_pickle
            raise EmbeddingInputError("not a .npy file (it does not start with the NumPy magic bytes)")
        _check_npy_size(fh, path)
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
    return x


def _check_npy_size(fh, path) -> None:
    """Refuse a ``.npy`` whose data is longer or shorter than its header's shape and dtype say: NumPy maps
    or reads just the header's shape, so extra rows would be left out silently and a truncated file
    fail deep inside the reader."""
    fmt = np.lib.format
    fh.seek(0)
    try:
        version = fmt.read_magic(fh)
        # 3.0 differs from 2.0 only in the header's text encoding (utf-8 field names)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(fh)
    except (ValueError, EOFError, OSError) as exc:
        raise _corrupt(path, ".npy", exc) from None
    if dtype.hasobject:  # pickled objects: the size says nothing; refused by name below
        return
    header = fh.tell()
    data = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    held = os.fstat(fh.fileno()).st_size - header
    if held != data:
        said = (f"its header says shape {tuple(shape)} {dtype.name}, {data:,} bytes of data after the "
                f"{header}-byte header")
        if held < data:
            raise EmbeddingInputError(f"could not read it as .npy (truncated or corrupt): {said}, but the file "
                                      f"holds only {held:,}, {data - held:,} bytes shorter (an interrupted copy?); "
                                      "copy or write it again")
        raise EmbeddingInputError(f"{said}, but the file holds {held:,}: {held - data:,} bytes longer than its "
                                  "header says, so the extra data would be left out; write it again with np.save")


def _converted(x: np.ndarray, path) -> np.ndarray:
    """A mapped 2-D numeric array as float32: itself when it is float32, else converted per block."""
    if x.ndim != 2 or x.dtype == np.float32 or x.dtype.kind not in "fiu" or 0 in x.shape:
        return x  # as it is: float32, or an array whose validation error as_float32_matrix words
    return float32_matrix_from_blocks(x.shape[0], x.shape[1], iter_row_blocks(x), what=str(path))


def _no_names(path, vectors, metadata, weights):
    if vectors is not None or isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError(
            f"{path.suffix} files hold a single array; vectors=, and weights=/metadata= given as "
            "names, do not apply (pass the arrays themselves)")


def _read_npz(path, *, vectors, metadata, weights, mmap) -> Loaded:
    keys, arrays = _npz_arrays(path)
    key = _pick_key(keys, lambda k: (arrays[k].shape, arrays[k].dtype.kind == "f"), vectors, path, "array")
    x = arrays.pop(key)
    n = x.shape[0] if x.ndim >= 1 else 0
    w = None
    if isinstance(weights, str):
        if weights not in arrays:
            raise EmbeddingInputError(f"no array {weights!r} for weights; arrays are {listing(keys)}")
        w = _npz_weights(arrays.pop(weights), weights, x)
    else:
        found = [k for k in NPZ_WEIGHT_NAMES if k in arrays]
        if found:  # checked, never dropped for a wrong length or shape; the caller's array= wins
            w = arrays.pop(found[0])
            w = _npz_weights(w, found[0], x) if weights is None else None
    cols = {k: a for k, a in arrays.items() if a.ndim == 1 and len(a) == n}
    if is_name_list(metadata):
        missing = [c for c in metadata if c not in cols]
        if missing:
            raise EmbeddingInputError(
                f"no 1-D array of length {n} named {listing(missing)} for metadata; arrays are {listing(keys)}")
        cols = {c: cols[c] for c in metadata}
    return Loaded(x, frame(cols), w)


def _npz_arrays(path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every array of an ``.npz``, read whole. The file is opened here, not by np.load, which leaves its
    own handle open when the archive is corrupt."""
    import zipfile
    import zlib

    broken = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)
    with open(path, "rb") as fh:
        try:
            z = np.load(fh, allow_pickle=False)
        except broken as exc:
            raise _corrupt(path, ".npz", exc) from None
        with z:
            keys, arrays = list(z.files), {}
            for k in keys:
                try:
                    a = z[k]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise EmbeddingInputError(
                            f"the array {k!r} holds Python objects (object dtype), not numbers") from None
                    raise _corrupt(path, ".npz", exc) from None
                except broken as exc:  # a bad CRC, bad compressed data, an encrypted member
                    raise _corrupt(path, ".npz", exc) from None
                if not isinstance(a, np.ndarray):  # np.load hands back the raw bytes of a non-.npy member
                    raise EmbeddingInputError(
                        f"the member {k!r} is not a .npy array (the archive holds other data under that name); "
                        "an .npz written by np.savez holds only arrays")
                arrays[k] = a
    return keys, arrays


def _npz_weights(w: np.ndarray, key: str, x: np.ndarray) -> np.ndarray:
    """The weights array ``key`` as stored, after checking it is one number per vector (named if not)."""
    if x.ndim == 2:  # else the vectors' own error comes first, from the set
        try:
            check_weights(w, x.shape[0])
        except EmbeddingInputError as exc:
            raise EmbeddingInputError(f"array {key!r} (the weights): {exc}") from None
    return w


def _read_parquet(path, *, vectors, metadata, weights, mmap) -> Loaded:
    """A list column of vectors is read in record batches into a float32 matrix (a scratch map when
    large); the other columns, the metadata, are read whole. Numeric-column tables are read whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, "Parquet", exc) from None
    names = schema.names
    col = parquet_vector_column(pf, vectors)
    try:
        if col is None:  # numeric columns, or a named non-list column: the table path handles it
            return from_frame(pf.read().to_pandas(), vectors=vectors, metadata=metadata, weights=weights,
                              where="table")
        rest = pf.read(columns=[c for c in names if c != col]).to_pandas()
        if mmap:
            n, d, blocks = parquet_blocks(pf, col)
            x = float32_matrix_from_blocks(n, d, blocks, what=str(path))
        else:
            x = arrow_vectors(pf.read(columns=[col]).column(col), col)
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, "Parquet", exc) from None
    return split_rest(rest, x, metadata=metadata, weights=weights)


def parquet_vector_column(pf, vectors) -> str | None:
    """The list column holding the vectors: ``vectors`` if it is one, the conventional name, the only one."""
    return schema_vector_column(pf.schema_arrow, vectors)


def schema_vector_column(schema, vectors) -> str | None:
    """:func:`parquet_vector_column` for an Arrow schema (a Parquet file's, a LanceDB table's, a dataset's)."""
    names = schema.names
    listlike = [c for c in names if arrow_is_list(schema.field(c).type)]
    if isinstance(vectors, str):
        if vectors not in names:
            raise EmbeddingInputError(f"no column {vectors!r} for vectors; columns are {listing(names)}")
        return vectors if vectors in listlike else None
    if vectors is None:
        named = [c for c in listlike if c.lower() in VECTOR_NAMES]
        if len(listlike) > 1 and len(named) != 1:
            raise EmbeddingInputError(f"several columns hold lists {listing(listlike)}; choose one with vectors=")
        return named[0] if len(named) == 1 else (listlike[0] if listlike else None)
    return None


def parquet_blocks(pf, col: str, offset: int = 0):
    """``(n, d, blocks)``: the list column ``col``'s rows and dimension, and its ``(start, float32 block)``
    pairs read one record batch at a time (``start`` counted from ``offset``)."""
    n = pf.metadata.num_rows
    batches = pf.iter_batches(batch_size=65_536, columns=[col])
    first = next(batches, None)
    if first is None or n == 0:
        return 0, 0, iter(())
    head = arrow_vectors(first.column(0), col)
    d = head.shape[1]

    def blocks():
        yield offset, head
        start = len(head)
        for batch in batches:
            part = arrow_vectors(batch.column(0), col, offset=start)
            if part.shape[1] != d:
                raise EmbeddingInputError(f"column {col!r} has rows of different lengths (ragged): row 0 has "
                                          f"{d} values but row {start} has {part.shape[1]}")
            yield offset + start, part
            start += len(part)

    return n, d, blocks()


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
    if df.isna().to_numpy().any():  # pandas pads a short row with NaN: tell one apart from a missing value
        check_csv_widths(path, sep, header=not isinstance(df.columns, pd.RangeIndex))
    return from_frame(df, vectors=vectors, metadata=metadata, weights=weights, where="table")


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


#: safetensors dtype names NumPy reads as they are (little-endian); BF16 is widened through torch.
SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                      "I8": "i1", "U8": "u1"}


def _read_safetensors(path, *, vectors, metadata, weights, mmap) -> Loaded:
    """A float32 tensor is memory-mapped from the file (the format stores it raw, little-endian, at an
    offset its header gives); other dtypes are read in row blocks through safetensors' memory-mapped
    reader and converted (into a scratch map when large)."""
    from safetensors import safe_open

    if isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError("weights=/metadata= given as names do not apply to .safetensors (pass the arrays)")
    try:
        with safe_open(str(path), framework="np") as f:
            keys = list(f.keys())
            slices = {k: f.get_slice(k) for k in keys}
            key = _pick_key(keys, lambda k: (slices[k].get_shape(), "F" in slices[k].get_dtype()),
                            vectors, path, "tensor")
            shape, dtype = tuple(slices[key].get_shape()), slices[key].get_dtype()
            if not mmap or len(shape) != 2 or 0 in shape:
                x = None if dtype not in SAFETENSORS_DTYPES else f.get_tensor(key)
            elif dtype == "F32":
                x = _mapped_tensor(path, key, shape)
            elif dtype in SAFETENSORS_DTYPES:
                x = float32_matrix_from_blocks(shape[0], shape[1], _slice_blocks(slices[key], shape[0]),
                                               what=str(path))
            else:
                x = None
        if x is None:  # bfloat16 has no NumPy dtype: read it with torch
            with safe_open(str(path), framework="pt") as f:
                if mmap and len(shape) == 2 and 0 not in shape:
                    blocks = ((s, tensor_to_numpy(b)) for s, b in _slice_blocks(f.get_slice(key), shape[0]))
                    x = float32_matrix_from_blocks(shape[0], shape[1], blocks, what=str(path))
                else:
                    x = tensor_to_numpy(f.get_tensor(key))
    except EmbeddingInputError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError, ValueError)
        raise _corrupt(path, ".safetensors", exc) from None
    return Loaded(x)


def _slice_blocks(sl, n: int, rows: int = 65_536):
    for start in range(0, n, rows):
        yield start, sl[start:min(n, start + rows)]  # safetensors does not clip a slice's end


def _mapped_tensor(path, key: str, shape: tuple) -> np.ndarray:
    """A read-only memory map of a float32 tensor: the header (little-endian u64 length, then JSON)
    gives its byte range after the header."""
    import json

    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        begin, end = json.loads(fh.read(header_len))[key]["data_offsets"]
    if end - begin != 4 * shape[0] * shape[1]:
        raise EmbeddingInputError(f"tensor {key!r} holds {end - begin} bytes, not {shape[0]} x {shape[1]} float32")
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + header_len + begin, shape=shape)


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
    vec = rows["vec"]  # .fvecs: a strided, read-only view of the file, used in place
    return Loaded(_converted(vec, path) if mmap else vec)


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
            key = _h5_corpus_key(f, keys, path)
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
        # the set checks 'neighbors' and 'distances' against the corpus and queries (check_benchmark)
        benchmark = ANNBenchmark(queries=q, neighbors=truth, distances=dist, metric=metric)
    return Loaded(x, benchmark=benchmark)


def _h5_corpus_key(f, keys: list[str], path: Path) -> str:
    """The corpus of an HDF5 file without ``train``: refused when the file is otherwise laid out as
    ann-benchmarks (its ``test`` queries must not be analysed as a corpus), else the only 2-D dataset."""
    ann = [k for k in ("test", "neighbors", "distances") if k in keys]
    if ann:
        raise EmbeddingInputError(
            f"has ann-benchmarks datasets {listing(ann)} but no 'train' dataset (the corpus); datasets are "
            f"{listing(keys)}; add the corpus as 'train', or name the dataset to analyse with vectors=")
    try:
        return _pick_key(keys, lambda k: (f[k].shape, f[k].dtype.kind == "f"), None, path, "dataset")
    except EmbeddingInputError as exc:
        raise EmbeddingInputError(f"has no 'train' dataset (the ann-benchmarks corpus), and {exc}") from None


def _h5_array(ds, path: Path, mmap: bool) -> np.ndarray:
    """A dataset as an array; contiguous uncompressed float32 data is memory-mapped from the file."""
    if mmap and ds.chunks is None and ds.compression is None and ds.dtype == np.dtype("<f4"):
        offset = ds.id.get_offset()
        if offset is not None:
            return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
    if mmap and ds.ndim == 2 and ds.dtype.kind in "fiu" and 0 not in ds.shape:  # chunked, compressed
        step = max(1, ds.chunks[0] if ds.chunks else 65_536)
        blocks = ((s, ds[s:s + step]) for s in range(0, ds.shape[0], step))
        return float32_matrix_from_blocks(ds.shape[0], ds.shape[1], blocks, what=str(path))
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
