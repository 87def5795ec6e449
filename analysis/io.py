"""Load embeddings from files and in-memory objects into an :class:`EmbeddingSet`.

One entry point, :func:`load`, reads every supported format and returns an
:class:`~embgeo.analysis.EmbeddingSet` whose vectors are validated (2-D, numeric, finite).

Formats (chosen by file extension):

=================  ============================================================================
``.npy``           a 2-D array; float32 files are memory-mapped read-only, so a file larger than
                   RAM is never read whole (checks scan it block by block)
``.npz``           the array named by ``vectors=``, else ``vectors``/``embeddings``, else the single
                   2-D float array; ``weights``/``frequencies`` become weights and other arrays of
                   length n become metadata columns
``.parquet``       a list or fixed-size-list column of numbers (auto-detected or ``vectors=``), or
                   the numeric columns; other columns become metadata
``.csv``/``.tsv``  numeric columns (text columns become metadata), or one column of JSON lists
``.safetensors``   the single 2-D tensor, or the one named by ``vectors=``
``.fvecs``         TEXMEX format (``.bvecs``, ``.ivecs`` too): per row a little-endian int32
                   dimension, then the values; read through a memory map
``.hdf5``/``.h5``  ann-benchmarks layout: ``train`` (corpus), ``test`` (queries), ``neighbors``,
                   ``distances`` and the ``distance`` attribute, kept as ``set.benchmark``
=================  ============================================================================

In memory: NumPy arrays (and nested lists), torch tensors, pandas DataFrames and Series, and an
existing EmbeddingSet. Loading never writes to the caller's file or array: files are opened
read-only and arrays are wrapped in read-only views or converted into new arrays.

References
----------
Jegou, Douze and Schmid (2011), "Product quantization for nearest neighbor search", IEEE TPAMI
33(1) -- the TEXMEX corpora and their ``.fvecs``/``.bvecs``/``.ivecs`` formats.
Aumueller, Bernhardsson and Faithfull (2020), "ANN-Benchmarks: A benchmarking tool for approximate
nearest neighbor algorithms", Information Systems 87 -- the ``.hdf5`` benchmark layout.

Example
-------
>>> import numpy as np
>>> from embgeo.analysis.io import load
>>> s = load(np.eye(3, dtype=np.float32), name="basis")
>>> s.n, s.dim
(3, 3)
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._embedding_set import ANNBenchmark, EmbeddingSet
from ._validation import EmbeddingInputError, as_float32_matrix, check_finite, check_same_dim

__all__ = ["FORMATS", "load"]

#: Column or key names tried, in order, when the caller does not name the vectors.
VECTOR_NAMES = ("vectors", "vector", "embeddings", "embedding", "emb")
#: Integer columns with these names are row ids (``Unnamed: 0`` is a pandas index written to CSV),
#: kept as metadata rather than read as vector components.
ID_COLUMNS = ("id", "idx", "index", "unnamed: 0")
#: ``.npz`` keys taken as item weights without being asked (an explicit key list is unambiguous).
NPZ_WEIGHT_NAMES = ("weights", "frequencies")
#: ann-benchmarks ``distance`` attribute -> embgeo metric.
ANN_METRICS = {"angular": "cosine", "cosine": "cosine", "euclidean": "euclidean", "l2": "euclidean",
               "dot": "dot", "ip": "dot", "inner_product": "dot"}
#: TEXMEX component type per extension (the row header is always a little-endian int32).
TEXMEX_DTYPES = {".fvecs": np.dtype("<f4"), ".bvecs": np.dtype("u1"), ".ivecs": np.dtype("<i4")}


# --------------------------------------------------------------------------------------------- entry point


def load(source, *, vectors=None, metadata=None, weights=None, name: str | None = None,
         on_invalid: str = "raise", mmap: bool = True) -> EmbeddingSet:
    """Load embeddings from a file or an in-memory object.

    Parameters
    ----------
    source : str, os.PathLike, array-like, torch.Tensor, pandas.DataFrame or EmbeddingSet
        A path (the format follows the extension, see :data:`FORMATS`) or the data itself. An
        EmbeddingSet is returned as is when no other argument is given.
    vectors : str or list of str, optional
        Where the vectors are inside ``source``: an ``.npz``/``.safetensors``/``.hdf5`` key, or a
        table column (of lists, or of JSON lists in a CSV). For tables, a list of numeric column
        names is also accepted. Auto-detected when omitted; an ambiguous source raises and lists
        the candidates.
    metadata : pandas.DataFrame, dict or list of str, optional
        A table with one row per vector to attach, or, for tabular sources, the names of the columns
        to keep as metadata (in numeric-column tables these are then not read as vector components).
        By default every non-vector column of a table becomes metadata; in numeric-column tables an
        integer column named ``id``, ``idx``, ``index`` or ``Unnamed: 0`` is metadata too.
    weights : str or array-like, optional
        Item weights (e.g. word frequencies): an array of length n, or the name of a column/key of
        ``source`` holding them (that column is then removed from the metadata). Tables never turn a
        column into weights unless asked; ``.npz`` keys ``weights``/``frequencies`` are used as is.
    name : str, optional
        Shown in reports; defaults to the file's stem, else ``"embeddings"``.
    on_invalid : {"raise", "drop"}
        Rows holding NaN or inf: raise a clear error, or drop them (with their metadata and weights;
        the dropped row numbers are kept in ``set.dropped_rows``).
    mmap : bool
        Memory-map float32 ``.npy``, ``.fvecs`` and uncompressed ``.hdf5`` data instead of reading it
        into memory.

    Returns
    -------
    EmbeddingSet
        With ``source`` set to the path, and ``benchmark`` set for ann-benchmarks files.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    EmbeddingInputError
        For an unknown extension, an empty, truncated or corrupt file, a missing vector column or key
        (the message lists the candidates), non-numeric or ragged rows, and NaN/inf values (unless
        ``on_invalid="drop"``). Messages about a file start with its path.

    Examples
    --------
    >>> import numpy as np
    >>> s = load(np.ones((4, 2)), weights=[1, 1, 2, 4])
    >>> s.probabilities.round(3).tolist()
    [0.125, 0.125, 0.25, 0.5]
    """
    if isinstance(source, EmbeddingSet):
        return _from_embedding_set(source, metadata=metadata, weights=weights, name=name,
                                   on_invalid=on_invalid, vectors=vectors)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), vectors=vectors, metadata=metadata, weights=weights,
                          name=name, on_invalid=on_invalid, mmap=mmap)
    loaded = _read_object(source, vectors=vectors, metadata=metadata, weights=weights)
    return _finish(loaded, metadata=metadata, weights=weights, name=name or "embeddings",
                   on_invalid=on_invalid, source=None)


@dataclass
class _Loaded:
    """What a reader found: vectors plus whatever came with them, before validation."""

    vectors: Any
    metadata: Any = None
    weights: Any = None
    benchmark: ANNBenchmark | None = None


def _finish(loaded: _Loaded, *, metadata, weights, name, on_invalid, source) -> EmbeddingSet:
    """Attach caller-given metadata/weights and build (and so validate) the EmbeddingSet."""
    meta = loaded.metadata
    if metadata is not None and not _is_name_list(metadata):
        meta = _attach_metadata(meta, metadata)
    w = loaded.weights
    if weights is not None and not isinstance(weights, str):
        w = weights
    return EmbeddingSet(loaded.vectors, meta, w, name=name, source=source,
                        benchmark=loaded.benchmark, on_invalid=on_invalid)


def _attach_metadata(found, given):
    import pandas as pd

    given = given if isinstance(given, pd.DataFrame) else pd.DataFrame(given)
    if found is None:
        return given
    if len(given) != len(found):
        raise EmbeddingInputError(
            f"metadata has {len(given)} rows but the source has {len(found)} vectors")
    # the caller's columns win over same-named columns found in the file
    return pd.concat([found.drop(columns=[c for c in given.columns if c in found.columns]),
                      given.reset_index(drop=True)], axis=1)


def _is_name_list(x) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(c, str) for c in x) and len(x) > 0


def _from_embedding_set(s: EmbeddingSet, *, metadata, weights, name, on_invalid, vectors):
    if vectors is not None:
        raise EmbeddingInputError("vectors= names a column or key; an EmbeddingSet already has its vectors")
    if metadata is None and weights is None and name is None:
        return s
    if isinstance(weights, str) or _is_name_list(metadata):
        raise EmbeddingInputError(
            "for an EmbeddingSet, metadata= and weights= must be data, not column names")
    meta = s.metadata if metadata is None else _attach_metadata(s.metadata, metadata)
    return EmbeddingSet(s.vectors, meta, s.weights if weights is None else weights,
                        name=name or s.name, source=s.source, benchmark=s.benchmark,
                        on_invalid=on_invalid)


# --------------------------------------------------------------------------------------------- in memory


def _read_object(obj, *, vectors, metadata, weights) -> _Loaded:
    import pandas as pd

    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=obj.name if obj.name is not None else "vectors")
    if isinstance(obj, pd.DataFrame):
        return _from_frame(obj, vectors=vectors, metadata=metadata, weights=weights, where="DataFrame")
    if vectors is not None or isinstance(weights, str) or _is_name_list(metadata):
        raise EmbeddingInputError(
            f"vectors=, and weights=/metadata= given as names, select columns or keys of a file or "
            f"DataFrame; got a {type(obj).__name__}")
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a torch tensor
        obj = _tensor_to_numpy(obj)
    return _Loaded(obj)


def _tensor_to_numpy(t) -> np.ndarray:
    t = t.detach().cpu()
    try:
        return t.numpy()
    except TypeError:  # bfloat16 and friends have no NumPy dtype; widen (a new tensor)
        return t.float().numpy()


# --------------------------------------------------------------------------------------------- tables


def _from_frame(df, *, vectors, metadata, weights, where: str) -> _Loaded:
    """Split a pandas DataFrame into vectors, weights and metadata."""
    columns = [str(c) for c in df.columns]
    df = df.set_axis(columns, axis=1)
    w = None
    if isinstance(weights, str):
        w = _column(df, weights, where, "weights").to_numpy()
    keep_meta = list(metadata) if _is_name_list(metadata) else None
    for col in keep_meta or []:
        _column(df, col, where, "metadata")

    if isinstance(vectors, str):
        x = _vector_column(_column(df, vectors, where, "vectors"), vectors, where)
        used = [vectors]
    elif _is_name_list(vectors):
        for col in vectors:
            _column(df, col, where, "vectors")
        x = _numeric_block(df, list(vectors), where)
        used = list(vectors)
    elif vectors is None:
        named = set(keep_meta or []) | ({weights} if isinstance(weights, str) else set())
        x, used = _auto_vectors(df, exclude=named, where=where)
    else:
        raise EmbeddingInputError(f"vectors= must be a column name or a list of names, got {vectors!r}")

    rest = [c for c in columns if c not in used and c != weights]
    if keep_meta is not None:
        rest = keep_meta
    meta = df[rest].reset_index(drop=True) if rest else None
    return _Loaded(x, meta, w)


def _column(df, col: str, where: str, role: str):
    if col not in df.columns:
        raise EmbeddingInputError(
            f"{where}: no column {col!r} for {role}; columns are {_listing(df.columns)}")
    return df[col]


def _listing(items, most: int = 20) -> str:
    """``['a', 'b', ...]`` for names, ``[3, 7, ...]`` for row numbers and lengths."""
    items = [n if isinstance(n, (int, np.integer)) else str(n) for n in items]
    shown = ", ".join(repr(n) if isinstance(n, str) else str(int(n)) for n in items[:most])
    return f"[{shown}{', ...' if len(items) > most else ''}]"


def _is_text_or_object(s) -> bool:
    import pandas as pd

    return s.dtype == object or pd.api.types.is_string_dtype(s.dtype)


def _is_listlike_column(s) -> bool:
    """True for an object column whose values are sequences (or JSON-list strings)."""
    if not _is_text_or_object(s):
        return False
    first = s.dropna()
    if first.empty:
        return False
    v = first.iloc[0]
    if isinstance(v, str):
        return v.lstrip().startswith("[")
    return isinstance(v, (list, tuple, np.ndarray))


def _auto_vectors(df, *, exclude: set, where: str):
    listlike = [c for c in df.columns if c not in exclude and _is_listlike_column(df[c])]
    named = [c for c in listlike if c.lower() in VECTOR_NAMES]
    if len(listlike) == 1 or len(named) == 1:
        col = named[0] if len(named) == 1 else listlike[0]
        return _vector_column(df[col], col, where), [col]
    if len(listlike) > 1:
        raise EmbeddingInputError(
            f"{where}: several columns hold lists {_listing(listlike)}; choose one with vectors=")
    ids = {c for c in df.columns if c.lower() in ID_COLUMNS and df[c].dtype.kind in "iu"}
    numeric = [c for c in df.columns if c not in exclude | ids and _looks_numeric(df[c], c, where)]
    if not numeric:
        raise EmbeddingInputError(
            f"{where}: found no vector column (a column of lists, or numeric columns); columns are "
            f"{_listing(df.columns)}; name one with vectors=")
    return _numeric_block(df, numeric, where), numeric


def _looks_numeric(s, col: str, where: str) -> bool:
    """A numeric column; an object column that is *mostly* numbers is an error, not metadata."""
    if s.dtype.kind in "fiu":
        return True
    if not _is_text_or_object(s):
        return False
    import pandas as pd

    values = s.dropna()
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna().to_numpy()
    if len(values) and bad.mean() < 0.5 and bad.any():
        rows = values.index[bad]
        raise EmbeddingInputError(
            f"{where}: column {col!r} is numeric except for non-numeric values at rows "
            f"{_listing(rows[:5])} (e.g. {values[bad].iloc[0]!r}); fix them or name the vector "
            "columns with vectors=")
    return False


def _numeric_block(df, cols: list[str], where: str) -> np.ndarray:
    block = df[cols]
    bad = [c for c in cols if block[c].dtype.kind not in "fiu"]
    if bad:
        raise EmbeddingInputError(f"{where}: vector columns {_listing(bad)} are not numeric")
    return block.to_numpy(dtype=np.float32)


def _vector_column(s, col: str, where: str) -> np.ndarray:
    """Stack a column of per-row sequences (or JSON-list strings) into an (n, d) array."""
    rows = []
    for i, v in enumerate(s.to_numpy()):
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise EmbeddingInputError(
                    f"{where}: column {col!r} row {i} is not a JSON list of numbers ({exc.msg}): "
                    f"{v[:40]!r}") from None
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise EmbeddingInputError(f"{where}: column {col!r} row {i} is empty (null)")
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise EmbeddingInputError(
                f"{where}: column {col!r} row {i} is a {type(v).__name__}, not a list of numbers")
        rows.append(v)
    lengths = np.array([len(r) for r in rows])
    if len(lengths) and (lengths != lengths[0]).any():
        odd = np.flatnonzero(lengths != lengths[0])
        raise EmbeddingInputError(
            f"{where}: column {col!r} has rows of different lengths (ragged): row 0 has "
            f"{lengths[0]} values but rows {_listing(odd[:5])} have {_listing(lengths[odd[:5]])}")
    try:
        return np.array(rows, dtype=np.float32).reshape(len(rows), -1)
    except (TypeError, ValueError):
        for i, r in enumerate(rows):
            try:
                np.asarray(r, dtype=np.float32)
            except (TypeError, ValueError):
                raise EmbeddingInputError(
                    f"{where}: column {col!r} row {i} holds non-numeric values: {str(r)[:60]}") from None
        raise


# --------------------------------------------------------------------------------------------- files


def _load_path(path: Path, *, vectors, metadata, weights, name, on_invalid, mmap) -> EmbeddingSet:
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise EmbeddingInputError(f"{path} is a directory; pass the path of one embeddings file")
    if reader is None:
        raise EmbeddingInputError(
            f"{path}: unknown file type {suffix or '(no extension)'!r}; embgeo reads "
            f"{', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise EmbeddingInputError(f"{path} is empty (0 bytes)")
    try:
        loaded = reader(path, vectors=vectors, metadata=metadata, weights=weights, mmap=mmap)
        return _finish(loaded, metadata=metadata, weights=weights, name=name or path.stem,
                       on_invalid=on_invalid, source=str(path))
    except EmbeddingInputError as exc:
        msg = str(exc)
        raise EmbeddingInputError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from exc


def _corrupt(path: Path, what: str, exc: Exception) -> EmbeddingInputError:
    return EmbeddingInputError(
        f"{path}: could not read it as {what} (truncated or corrupt?): {type(exc).__name__}: {exc}")


def _pick_key(keys: list[str], arrays: Callable[[str], Any], vectors, path: Path, kind: str) -> str:
    """The key holding the vectors: the named one, a conventional name, or the only 2-D float one."""
    if vectors is not None:
        if vectors not in keys:
            raise EmbeddingInputError(f"no {kind} {vectors!r}; {kind}s are {_listing(keys)}")
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
        raise EmbeddingInputError(f"found no 2-D numeric {kind} among {_listing(keys)}; name one with vectors=")
    raise EmbeddingInputError(
        f"several 2-D {kind}s could be the vectors: {_listing(matrices)}; choose one with vectors=")


def _read_npy(path, *, vectors, metadata, weights, mmap) -> _Loaded:
    _no_names(path, vectors, metadata, weights)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":  # else np.load would try to unpickle it and blame allow_pickle
        raise EmbeddingInputError("not a .npy file (it does not start with the NumPy magic bytes)")
    try:
        x = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "object" in str(exc):
            raise EmbeddingInputError(f"holds Python objects (object dtype), not numeric vectors") from None
        raise _corrupt(path, ".npy", exc) from None
    except (OSError, EOFError) as exc:
        raise _corrupt(path, ".npy", exc) from None
    if x.dtype.kind not in "fiu" and x.dtype.kind != "b":
        raise EmbeddingInputError(f"dtype {x.dtype} is not a numeric vector type")
    # float32 stays a read-only memory map; other dtypes are converted into memory once
    return _Loaded(x)


def _no_names(path, vectors, metadata, weights):
    if vectors is not None or isinstance(weights, str) or _is_name_list(metadata):
        raise EmbeddingInputError(
            f"{path.suffix} files hold a single array; vectors=, and weights=/metadata= given as "
            "names, do not apply (pass the arrays themselves)")


def _read_npz(path, *, vectors, metadata, weights, mmap) -> _Loaded:
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
            raise EmbeddingInputError(f"no array {weights!r} for weights; arrays are {_listing(keys)}")
        w = arrays.pop(weights)
    else:
        for k in NPZ_WEIGHT_NAMES:
            if k in arrays and arrays[k].ndim == 1 and len(arrays[k]) == n:
                w = arrays.pop(k)
                break
    cols = {k: a for k, a in arrays.items() if a.ndim == 1 and len(a) == n}
    if _is_name_list(metadata):
        missing = [c for c in metadata if c not in cols]
        if missing:
            raise EmbeddingInputError(
                f"no 1-D array of length {n} named {_listing(missing)} for metadata; arrays are {_listing(keys)}")
        cols = {c: cols[c] for c in metadata}
    return _Loaded(x, _frame(cols), w)


def _frame(cols: dict):
    if not cols:
        return None
    import pandas as pd

    return pd.DataFrame(cols)


def _read_parquet(path, *, vectors, metadata, weights, mmap) -> _Loaded:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise _corrupt(path, "Parquet", exc) from None
    names = table.column_names
    listlike = [c for c in names if _arrow_is_list(table.schema.field(c).type)]
    if isinstance(vectors, str):
        if vectors not in names:
            raise EmbeddingInputError(f"no column {vectors!r} for vectors; columns are {_listing(names)}")
        col = vectors if vectors in listlike else None
    elif vectors is None:
        named = [c for c in listlike if c.lower() in VECTOR_NAMES]
        if len(listlike) > 1 and len(named) != 1:
            raise EmbeddingInputError(
                f"several columns hold lists {_listing(listlike)}; choose one with vectors=")
        col = named[0] if len(named) == 1 else (listlike[0] if listlike else None)
    else:
        col = None
    if col is None:  # numeric columns, or a named non-list column: the table path handles it
        return _from_frame(table.to_pandas(), vectors=vectors, metadata=metadata, weights=weights,
                           where="table")
    x = _arrow_vectors(table.column(col), col)
    rest = table.drop_columns([col]).to_pandas()
    return _split_rest(rest, x, metadata=metadata, weights=weights)


def _split_rest(df, x: np.ndarray, *, metadata, weights) -> _Loaded:
    """``x`` with weights and metadata from the non-vector columns of a table."""
    w = None
    if isinstance(weights, str):
        w = _column(df, weights, "table", "weights").to_numpy()
        df = df.drop(columns=[weights])
    if _is_name_list(metadata):
        for c in metadata:
            _column(df, c, "table", "metadata")
        df = df[list(metadata)]
    return _Loaded(x, df if len(df.columns) else None, w)


def _arrow_is_list(t) -> bool:
    import pyarrow as pa

    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
        pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))


def _arrow_vectors(chunked, col: str) -> np.ndarray:
    """An (n, d) float32 array from a list column, checking for nulls and ragged rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _arrow_is_list(chunked.type):
        raise EmbeddingInputError(f"column {col!r} has type {chunked.type}, not a list of numbers")
    arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    n = len(arr)
    if arr.null_count:
        rows = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
        raise EmbeddingInputError(f"column {col!r} is null at rows {_listing(rows[:5])}")
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if n else 0
        odd = np.flatnonzero(lengths != d)
        if len(odd):
            raise EmbeddingInputError(
                f"column {col!r} has rows of different lengths (ragged): row 0 has {d} values but "
                f"rows {_listing(odd[:5])} have {_listing(lengths[odd[:5]])}")
    # flatten() honours slicing offsets; nulls inside a vector become NaN and are reported later
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(n, d)


def _read_csv(path, *, vectors, metadata, weights, mmap) -> _Loaded:
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
    return _from_frame(df, vectors=vectors, metadata=metadata, weights=weights, where="table")


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


def _read_safetensors(path, *, vectors, metadata, weights, mmap) -> _Loaded:
    from safetensors import safe_open

    if isinstance(weights, str) or _is_name_list(metadata):
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
            x = _tensor_to_numpy(f.get_tensor(key))
    return _Loaded(x)


def _read_texmex(path, *, vectors, metadata, weights, mmap) -> _Loaded:
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
            f"rows {_listing(bad[:5])} have dimension headers {_listing(rows['dim'][bad[:5]])}, "
            f"but row 0 says {d}; every row must have the same dimension")
    return _Loaded(rows["vec"])  # a strided, read-only view of the file for .fvecs


def _texmex_bad_headers(dims: np.ndarray, d: int, block: int = 1 << 20) -> np.ndarray:
    bad = [s + np.flatnonzero(dims[s:s + block] != d) for s in range(0, len(dims), block)]
    return np.concatenate(bad) if bad else np.empty(0, dtype=np.int64)


def _read_hdf5(path, *, vectors, metadata, weights, mmap) -> _Loaded:
    import h5py

    if isinstance(weights, str) or _is_name_list(metadata):
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
            raise EmbeddingInputError(f"no dataset {key!r}; datasets are {_listing(keys)}")
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
    return _Loaded(x, benchmark=benchmark)


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


_READERS: dict[str, Callable[..., _Loaded]] = {
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
FORMATS: tuple[str, ...] = tuple(_READERS)
