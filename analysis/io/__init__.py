"""Load embeddings from files and in-memory objects into an :class:`EmbeddingSet`.

One entry point, :func:`load`, reads every supported format and returns an
:class:`~embgeo.analysis.EmbeddingSet` whose vectors are validated (2-D, numeric, finite).

Formats (chosen by file extension):

=================  ============================================================================
``.npy``           a 2-D array; float32 files are memory-mapped read-only, so a file larger than
                   RAM is never read whole (checks scan it block by block)
``.npz``           the array named by ``vectors=``, else ``vectors``/``embeddings``, else the single
                   2-D float array; ``weights``/``frequencies`` become weights (checked: one number
                   per vector) and other arrays of length n become metadata columns
``.parquet``       a list or fixed-size-list column of numbers (auto-detected or ``vectors=``), or
                   the numeric columns; other columns become metadata
``.csv``/``.tsv``  numeric columns (text columns become metadata), or one column of JSON lists
``.safetensors``   the single 2-D tensor, or the one named by ``vectors=``
``.fvecs``         TEXMEX format (``.bvecs``, ``.ivecs`` too): per row a little-endian int32
                   dimension, then the values; read through a memory map
``.hdf5``/``.h5``  ann-benchmarks layout: ``train`` (corpus), ``test`` (queries), ``neighbors``,
                   ``distances`` and the ``distance`` attribute, kept as ``set.benchmark``
a directory, glob  ``.npy`` or Parquet shards, in file-name order, as one set (a ``shard`` metadata
                   column names each row's file)
a URI              a vector database or dataset, read in pages: ``lancedb://PATH/TABLE``,
                   ``chroma://PATH/COLLECTION``, ``qdrant+local://PATH/COLLECTION``,
                   ``qdrant://HOST:PORT/COLLECTION``, ``milvus://FILE.db/COLLECTION``, ``hf://PATH``
                   (see :mod:`~embgeo.analysis.io.databases`; ``from_lancedb`` and the other ``from_*``
                   functions also take clients, page sizes and progress callbacks)
=================  ============================================================================

Nothing large is converted in memory. Float32 ``.npy``, ``.fvecs``, float32 ``.safetensors`` and
contiguous float32 ``.hdf5`` data are memory-mapped and read in place (the set's repr says
"memory-mapped"). Other dtypes (float16, bfloat16, float64, ``.bvecs`` bytes), Parquet list columns,
chunked HDF5 and shards are converted block by block into float32: in memory up to 512 MiB, beyond
that into an unnamed scratch file on disk (``$EMBGEO_SCRATCH``, else the temporary directory; the repr
says "scratch map on disk"), which nothing needs to clean up. ``.npz`` and CSV are read whole.

A ``dask.array`` is computed one row chunk at a time into such a float32 matrix (in memory, or a
scratch map when large), never whole; to keep the rows on a cluster, give the report its file and a
``cluster=`` instead.

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

import errno
import os
import stat
from pathlib import Path

from .._core import EmbeddingInputError
from ..embeddings import EmbeddingSet
from .clients import from_milvus, from_qdrant
from .databases import SCHEMES, is_uri
from .formats import FORMATS, READERS
from .live import LiveIndex, open_live_index
from .shards import read_shards, shard_paths
from .tables import Loaded, from_frame, is_name_list, tensor_to_numpy
from .uris import allowed_uri, canonical_uri
from .vectordbs import from_chroma, from_hf, from_lancedb, is_database_object

__all__ = ["FORMATS", "SCHEMES", "LiveIndex", "allowed_uri", "canonical_uri", "from_chroma", "from_hf", "from_lancedb",
           "from_milvus", "from_qdrant", "load", "open_live_index"]


# --------------------------------------------------------------------------------------------- entry point


def load(source, *, vectors=None, metadata=None, weights=None, name: str | None = None,
         on_invalid: str = "raise", mmap: bool = True) -> EmbeddingSet:
    """Load embeddings from a file or an in-memory object.

    Parameters
    ----------
    source : str, os.PathLike, array-like, torch.Tensor, pandas.DataFrame or EmbeddingSet
        A path (the format follows the extension, see :data:`FORMATS`), a database URI (see
        :data:`SCHEMES`), or the data itself (also a LanceDB table, a Chroma collection or a
        ``datasets.Dataset``). An EmbeddingSet is returned as is when no other argument is given.
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
        Memory-map float32 ``.npy``, ``.fvecs``, ``.safetensors`` and uncompressed ``.hdf5`` data, and
        convert other data block by block (into a scratch map when large), instead of reading it whole
        into memory. Shards are always read block by block.

    Returns
    -------
    EmbeddingSet
        With ``source`` set to the path, and ``benchmark`` set for ann-benchmarks files.

    Raises
    ------
    FileNotFoundError
        If a path does not exist (a dangling symbolic link is named as one).
    EmbeddingInputError
        For an unknown extension, an empty, truncated or corrupt file (a ``.npy`` whose data is longer
        or shorter than its header says, a CSV row with too few fields), a path that is not a regular
        file (a FIFO, a device: named, and never opened), a symbolic link loop, a file this user may
        not read, a missing vector column or key (the message lists the candidates), non-numeric or
        ragged rows, weights that are not one finite non-negative number per vector, ann-benchmarks
        ground truth that is not integer row numbers of ``train`` (or a file with ``test`` but no
        ``train``), and NaN/inf values (unless ``on_invalid="drop"``). Messages about a file start
        with its path.

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
    if is_uri(source) or is_database_object(source):  # a vector database or dataset (see .databases)
        from .vectordbs import load_database_object, load_uri

        read = load_uri if is_uri(source) else load_database_object
        return read(source, vectors=vectors, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), vectors=vectors, metadata=metadata, weights=weights,
                          name=name, on_invalid=on_invalid, mmap=mmap)
    loaded = _read_object(source, vectors=vectors, metadata=metadata, weights=weights)
    return _finish(loaded, metadata=metadata, weights=weights, name=name or "embeddings",
                   on_invalid=on_invalid, source=None)


def _finish(loaded: Loaded, *, metadata, weights, name, on_invalid, source) -> EmbeddingSet:
    """Attach caller-given metadata/weights and build (and so validate) the EmbeddingSet."""
    meta = loaded.metadata
    if metadata is not None and not is_name_list(metadata):
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


def _from_embedding_set(s: EmbeddingSet, *, metadata, weights, name, on_invalid, vectors):
    if vectors is not None:
        raise EmbeddingInputError("vectors= names a column or key; an EmbeddingSet already has its vectors")
    if metadata is None and weights is None and name is None:
        return s
    if isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError(
            "for an EmbeddingSet, metadata= and weights= must be data, not column names")
    meta = s.metadata if metadata is None else _attach_metadata(s.metadata, metadata)
    return EmbeddingSet(s.vectors, meta, s.weights if weights is None else weights,
                        name=name or s.name, source=s.source, benchmark=s.benchmark,
                        on_invalid=on_invalid)


# --------------------------------------------------------------------------------------------- in memory


def _read_object(obj, *, vectors, metadata, weights) -> Loaded:
    import pandas as pd

    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=obj.name if obj.name is not None else "vectors")
    if isinstance(obj, pd.DataFrame):
        return from_frame(obj, vectors=vectors, metadata=metadata, weights=weights, where="DataFrame")
    if vectors is not None or isinstance(weights, str) or is_name_list(metadata):
        raise EmbeddingInputError(
            f"vectors=, and weights=/metadata= given as names, select columns or keys of a file or "
            f"DataFrame; got a {type(obj).__name__}")
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a torch tensor
        obj = tensor_to_numpy(obj)
    return Loaded(obj)



# --------------------------------------------------------------------------------------------- files


def _load_path(path: Path, *, vectors, metadata, weights, name, on_invalid, mmap) -> EmbeddingSet:
    suffix = path.suffix.lower()
    reader = READERS.get(suffix)
    shards = shard_paths(path)
    if shards is not None:  # a directory or glob of .npy / Parquet shards
        loaded = read_shards(shards, vectors=vectors, metadata=metadata, weights=weights)
        return _finish(loaded, metadata=metadata, weights=weights, name=name or path.name.rstrip("*") or "shards",
                       on_invalid=on_invalid, source=str(path))
    _check_regular_file(path)
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
    except PermissionError:
        raise EmbeddingInputError(f"{path}: permission denied: this user may not read it; check its "
                                  "permissions (ls -l), or copy it somewhere readable") from None
    except EmbeddingInputError as exc:
        msg = str(exc)
        raise EmbeddingInputError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from exc


#: What a path that is not a regular file is, for messages.
_FILE_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _check_regular_file(path: Path) -> None:
    """Name what stands at ``path`` unless it is a regular file. Only ``stat`` is called: opening a FIFO
    would block until something writes to it, and reading /dev/zero would never end."""
    try:
        st = path.stat()  # follows symbolic links
    except FileNotFoundError:
        if path.is_symlink():
            raise FileNotFoundError(
                f"no such file: {path} (a symbolic link to {os.readlink(path)}, which does not exist)") from None
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise EmbeddingInputError(f"{path} is a symbolic link loop (too many levels of symbolic links); "
                                      "point the link at a real file") from None
        if exc.errno == errno.EACCES:
            raise EmbeddingInputError(f"{path}: permission denied (a directory on its path may not be "
                                      "searched); check the permissions") from None
        raise EmbeddingInputError(f"{path} cannot be examined: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise EmbeddingInputError(f"{path} is {kind}, not a regular file: embgeo reads files it can seek in and "
                                  "map; save the data to a file first")
