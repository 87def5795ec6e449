"""Embeddings where they live: vector databases and Hugging Face datasets, read in pages.

Retrieval systems keep their vectors in a database, not in ``.npy`` files. Each reader here opens a
collection through the database's own client, read-only, and copies it page by page (never the whole
collection in one call) into one float32 matrix, in memory when small and an unnamed scratch map on
disk otherwise (:func:`embgeo.analysis._core.float32_matrix_from_blocks`). Ids, documents and payload
columns come along as metadata, one row per vector, in the order the database returned them.

===============================================  ===============================================
``lancedb://PATH/TABLE``                         a LanceDB table (``PATH``: the database folder)
``chroma://PATH/COLLECTION``                     a Chroma ``PersistentClient`` folder
``qdrant+local://PATH/COLLECTION``               Qdrant's embedded local mode (a storage folder)
``qdrant://HOST:PORT/COLLECTION``                a Qdrant server (HTTP, port 6333 by default)
``milvus://FILE.db/COLLECTION``                  a Milvus Lite file
``hf://PATH``                                    a Hugging Face dataset saved with ``save_to_disk``
===============================================  ===============================================

A relative ``PATH`` is relative to the working directory; an absolute one starts with a third slash
(``lancedb:///data/lance/docs``). :func:`embgeo.analysis.io.load` takes these URIs (and LanceDB
tables, Chroma collections and ``datasets.Dataset`` objects); the ``from_*`` functions also take a
client and a collection name, a page size and a progress callback. Each database client is an
optional extra (``pip install 'embgeo[lancedb]'``, ``[chroma]``, ``[qdrant]``, ``[milvus]``, ``[hf]``).

Every row is read exactly once: the ids must come back unique and the rows must add up to the count
the database gave before reading, else the read is refused (the collection changed while it was read).
Nothing is written to the collection: its rows, ids and vectors are the same after a read (the tests
check the count and a checksum with each database's own client). LanceDB tables, Qdrant local storage and
saved datasets stay byte for byte as they were. Two clients do housekeeping of their own when they open
a collection, which embgeo cannot switch off: Chroma's client persists its pending HNSW index segment and
updates ``chroma.sqlite3``, and Milvus Lite builds its index file when the collection is loaded for the
read (and embgeo releases the collection again if it was not loaded before). Chroma's schema migrations
are only validated, never applied: a folder written by another Chroma version that needs one is refused
with a clear error, not upgraded in place.

References
----------
LanceDB (https://lancedb.github.io/lancedb/), Chroma (https://docs.trychroma.com/), Qdrant
(https://qdrant.tech/documentation/), Milvus Lite (https://milvus.io/docs/milvus_lite.md) and
Lhoest et al. (2021), "Datasets: A Community Library for Natural Language Processing", EMNLP System
Demonstrations -- the ``save_to_disk`` Arrow layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .._core import EmbeddingInputError, Progress, float32_matrix_from_blocks
from .tables import Loaded, listing, split_rest

#: Rows fetched per call unless the caller says otherwise (8,192 x 384 float32 is 12 MiB).
PAGE_SIZE = 8192
#: Collections at least this large show a progress bar when ``progress=None``.
AUTO_BAR_ROWS = 100_000
#: URI scheme -> the ``from_*`` function name and the extra that installs its client.
SCHEMES = {"lancedb": ("from_lancedb", "lancedb"), "chroma": ("from_chroma", "chroma"),
           "qdrant": ("from_qdrant", "qdrant"), "qdrant+local": ("from_qdrant", "qdrant"),
           "milvus": ("from_milvus", "milvus"), "hf": ("from_hf", "hf")}
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)


@dataclass
class Page:
    """One page of a collection: its vectors (an Arrow list array, an ndarray, or a list of sequences and
    Nones) and the other columns (a DataFrame, ids first), row for row."""

    vectors: Any
    frame: Any


@dataclass
class Collection:
    """An opened collection, ready to be read in pages with :func:`read_collection`."""

    where: str                     #: for messages: the URI, or what the caller passed
    name: str                      #: the collection's name (the set's default name)
    n: int                         #: rows, counted before reading
    pages: Callable[[int], Iterator[Page]]  #: page_size -> the pages, in order
    vector_name: str = "vector"    #: the vector column/field/name, for messages
    id_column: str | None = "id"   #: the metadata column naming each row, for messages
    dim: int | None = None         #: the dimension the collection declares, if it does
    close: Callable[[], None] = field(default=lambda: None)


def is_uri(source) -> bool:
    """True for a ``scheme://...`` string (a database URI, or a mistyped one)."""
    return isinstance(source, str) and _URI.match(source) is not None


def split_uri(uri: str) -> tuple[str, str]:
    """``(scheme, rest)`` of a URI whose scheme embgeo reads; a clear error for any other."""
    scheme, rest = _URI.match(uri).groups()
    if scheme.lower() not in SCHEMES:
        raise EmbeddingInputError(f"{uri}: unknown URI scheme {scheme + '://'!r}; embgeo reads "
                                  f"{', '.join(s + '://' for s in SCHEMES)}, and files by path")
    return scheme.lower(), rest


def path_and_name(uri: str, what: str) -> tuple[Path, str]:
    """``PATH`` and ``NAME`` of ``scheme://PATH/NAME``."""
    _, rest = split_uri(uri)
    folder, _, name = rest.rstrip("/").rpartition("/")
    if not folder or not name:
        scheme = uri.split("://")[0]
        raise EmbeddingInputError(f"{uri}: expected {scheme}://PATH/{what} (the {what.lower()} after the last "
                                  f"'/'), e.g. {scheme}://data/db/docs or {scheme}:///abs/path/docs")
    return Path(folder), name


def require(module: str, extra: str):
    """Import a database client, or raise a clear error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EmbeddingInputError(f"reading this source needs the {module} package, which is not installed "
                                  f"({exc.name or module} is missing); install the optional extra: "
                                  f"pip install 'embgeo[{extra}]'") from None


def existing(path: Path, what: str, uri: str) -> Path:
    """``path`` if it exists: a database client opening a missing path would create an empty database."""
    if not path.exists():
        raise FileNotFoundError(f"{uri}: no such {what}: {path} (nothing was created)")
    return path


# --------------------------------------------------------------------------------------------- reading


def read_collection(c: Collection, *, vectors=None, metadata=None, weights=None, page_size: int = PAGE_SIZE,
                    progress=None) -> Loaded:
    """Read ``c`` page by page into a :class:`~.tables.Loaded` (float32 vectors, metadata, weights).

    ``metadata`` (a list of column names) and ``weights`` (a column name) select from the collection's
    columns as for a table; ``vectors`` is handled when the collection is opened.
    """
    import pandas as pd

    if vectors is not None and not isinstance(vectors, str):
        raise EmbeddingInputError(f"{c.where}: vectors= names one vector column or field, got {vectors!r}")
    if not isinstance(page_size, (int, np.integer)) or page_size < 1:
        raise EmbeddingInputError(f"page_size must be a positive integer, got {page_size!r}")
    if c.n == 0:
        raise EmbeddingInputError(f"{c.where} is empty (0 rows): there is nothing to analyse")
    pages = iter(c.pages(int(page_size)))
    first = next(pages, None)
    if first is None:
        raise EmbeddingInputError(f"{c.where}: the database counted {c.n:,} rows but returned none; "
                                  "did the collection change while it was read?")
    head = _block(first, 0, c, c.dim)
    d = head.shape[1]
    frames = []

    def blocks():
        start = 0
        with Progress(progress, c.n, f"reading {c.where}", unit="row", auto=c.n >= AUTO_BAR_ROWS) as bar:
            for page, block in _checked(first, head, pages, c, d):
                if start + len(block) > c.n:
                    raise EmbeddingInputError(f"{c.where}: the database counted {c.n:,} rows before the read but "
                                              "returned more; the collection changed while it was read, try again")
                frames.append(page.frame)
                yield start, block
                start += len(block)
                bar.update(len(block))
        if start != c.n:
            raise EmbeddingInputError(f"{c.where}: the database counted {c.n:,} rows before the read but returned "
                                      f"{start:,}; the collection changed while it was read, try again")

    x = float32_matrix_from_blocks(c.n, d, blocks(), what=c.where)
    frames = [f for f in frames if f is not None]
    meta = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(index=range(c.n))
    if c.id_column in meta.columns:
        dup = meta[c.id_column].duplicated()
        if dup.any():
            twice = _plain(meta[c.id_column][dup].iloc[0])
            raise EmbeddingInputError(f"{c.where}: paging returned the id {twice!r} twice; the collection changed "
                                      "while it was read, try again")
    try:
        return split_rest(meta, x, metadata=metadata, weights=weights)
    except EmbeddingInputError as exc:
        raise EmbeddingInputError(f"{c.where}: {exc}") from None


def _checked(first, head, pages, c: Collection, d: int):
    yield first, head
    start = len(head)
    for page in pages:
        block = _block(page, start, c, d)
        yield page, block
        start += len(block)


def _block(page: Page, start: int, c: Collection, d: int | None) -> np.ndarray:
    """A page's vectors as a 2-D numeric array, refusing null vectors and rows of another dimension."""
    v = page.vectors
    if hasattr(v, "null_count") or hasattr(v, "num_chunks"):  # Arrow
        return _arrow_block(v, page, start, c, d)
    if isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype.kind in "fiu":
        lengths, nulls = np.full(len(v), v.shape[1]), np.zeros(len(v), dtype=bool)
    else:
        v = list(v)
        nulls = np.array([r is None for r in v], dtype=bool)
        lengths = np.array([0 if r is None else _length(r, page, start, i, c) for i, r in enumerate(v)], dtype=int)
    _check_rows(nulls, lengths, page, start, c, d)
    if isinstance(v, np.ndarray):
        return v
    try:
        return np.asarray(v, dtype=np.float64).reshape(len(v), -1)
    except (TypeError, ValueError):
        raise EmbeddingInputError(f"{c.where}: {c.vector_name!r} holds non-numeric values in the page starting at "
                                  f"row {start}") from None


def _length(r, page, start: int, i: int, c) -> int:
    try:
        if isinstance(r, (str, bytes)) or (np.ndim(r) != 1):
            raise TypeError
        return len(r)
    except (TypeError, ValueError):  # np.ndim of a ragged nesting raises ValueError
        raise EmbeddingInputError(f"{c.where}: {c.vector_name!r} of {_row(page, start + i, c, start)} is a "
                                  f"{type(r).__name__}, not one list of numbers (a multi-vector or sparse "
                                  "vector is not a dense embedding)") from None


def _arrow_block(arr, page, start, c, d):
    import pyarrow as pa
    import pyarrow.compute as pc

    from .tables import arrow_is_list, arrow_vectors

    if hasattr(arr, "num_chunks"):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not arrow_is_list(arr.type):
        raise EmbeddingInputError(f"{c.where}: column {c.vector_name!r} has type {arr.type}, not a list of numbers")
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(arr.type):
        lengths = np.full(len(arr), arr.type.list_size)
    else:
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    _check_rows(nulls, lengths, page, start, c, d)
    return arrow_vectors(arr, c.vector_name, offset=start)


def _check_rows(nulls, lengths, page, start, c: Collection, d):
    if nulls.any():
        bad = np.flatnonzero(nulls)
        raise EmbeddingInputError(
            f"{c.where}: {len(bad)} row{'s' * (len(bad) != 1)} of this page ha{'ve' if len(bad) != 1 else 's'} no "
            f"vector (null {c.vector_name!r}), first {_row(page, start + bad[0], c, start)}; embgeo needs one vector "
            "per row: fill them, or filter those rows out")
    want = d if d is not None else (int(lengths[0]) if len(lengths) else 0)
    odd = np.flatnonzero(lengths != want)
    if len(odd):
        if c.dim is not None and want == c.dim:
            said = f"the collection declares dimension {c.dim}"
        elif d is None:
            said = f"{_row(page, start, c, start)} has {want}"
        else:
            said = f"the rows before it have {want}"
        raise EmbeddingInputError(
            f"{c.where}: {c.vector_name!r} of {_row(page, start + odd[0], c, start)} has {int(lengths[odd[0]])} values, "
            f"but {said}; every vector must have the same dimension")
    if want == 0:
        raise EmbeddingInputError(f"{c.where}: {c.vector_name!r} holds empty (0-value) vectors")


def _row(page: Page, row: int, c: Collection, start: int = 0) -> str:
    """'row 5 (id 'doc5')': a row number and, where the collection has ids, its id."""
    frame = page.frame
    if c.id_column and frame is not None and c.id_column in frame.columns:
        return f"row {row} ({c.id_column} {_plain(frame[c.id_column].iloc[row - start])!r})"
    return f"row {row}"


def _plain(value):
    """A NumPy scalar as the Python value it holds (``13``, not ``np.int64(13)``, in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def to_set(c: Collection, *, vectors, metadata, weights, name, on_invalid, page_size, progress):
    """Read ``c`` into an EmbeddingSet (validated like any other), closing it whatever happens."""
    from . import _finish  # the same finish as load(): caller's metadata/weights, then validation

    try:
        loaded = read_collection(c, vectors=vectors, metadata=metadata, weights=weights, page_size=page_size,
                                 progress=progress)
    finally:
        c.close()
    return _finish(loaded, metadata=metadata, weights=weights, name=name or c.name, on_invalid=on_invalid,
                   source=c.where)


def listing_names(names) -> str:
    return listing(sorted(str(n) for n in names)) if names else "none"


# --------------------------------------------------------------------------------------------- shared by the openers

COMMON_DOC = """
    vectors : str, optional
        The vector column, field or (Qdrant) vector name; detected when there is only one.
    metadata : list of str or pandas.DataFrame, optional
        Column names to keep (default: every id, document and payload column), or a table to attach.
    weights : str or array-like, optional
        A column holding item weights, or the weights.
    name : str, optional
        Shown in reports; defaults to the collection's name.
    on_invalid : {"raise", "drop"}
        Rows holding NaN or inf (see :func:`embgeo.analysis.io.load`). Null vectors always raise.
    page_size : int
        Rows fetched per call to the database.
    progress : None, bool or callable
        A bar (``None``: for 100,000 rows or more), or ``progress(done, total, description)``; raising
        in it cancels the read.

    Returns
    -------
    EmbeddingSet
        Its ``source`` is the URI (or a description of the object passed).

    Raises
    ------
    EmbeddingInputError
        For a missing client (naming the ``pip install 'embgeo[...]'`` extra), a missing collection (the
        message lists those there are), an empty one, null vectors, vectors of different dimensions, or a
        collection that changed while it was read.
    FileNotFoundError
        For a local database path that does not exist (nothing is created there).
"""


def document(f):
    f.__doc__ = f.__doc__.replace("    {common}\n", COMMON_DOC.lstrip("\n"))
    return f


def where_of(source, name: str, kind: str) -> str:
    return source if is_uri(source) else f"{kind} {name!r}"


def expect_scheme(uri: str, schemes: tuple[str, ...], function: str) -> str:
    scheme, _ = split_uri(uri)
    if scheme not in schemes:
        raise EmbeddingInputError(f"{uri}: {function} reads {' or '.join(s + '://' for s in schemes)} URIs; "
                                  f"use {SCHEMES[scheme][0]} (or load) for {scheme}://")
    return scheme


def locate(source, name, *, scheme: str, what: str, function: str, kind: str) -> tuple[Path, str, str]:
    """The folder (or file), the table or collection name, and how errors name them, of a URI
    ``scheme://PATH/NAME`` or of a path with a separate ``name`` (``what``: "table" or "collection",
    ``kind``: the database, as messages say it)."""
    if is_uri(source):
        expect_scheme(source, (scheme,), function)
        path, name = path_and_name(source, what.upper())
        return path, name, source
    path, name = Path(source), needs_name(name, what, function)
    return path, name, f"{kind} {what} {name!r} in {path}"


def needs_name(name, what: str, function: str):
    if not isinstance(name, str) or not name:
        raise EmbeddingInputError(f"{function}: name the {what} to read, e.g. {function}(PATH, 'docs')")
    return name


def with_payload(frame, payloads):
    """``frame`` (the ids) beside one column per payload key; a key named like an id column is prefixed."""
    import pandas as pd

    if payloads is None or not any(payloads):
        return frame
    extra = pd.DataFrame.from_records([p or {} for p in payloads])
    extra.columns = [f"payload.{c}" if c in frame.columns else str(c) for c in extra.columns]
    return pd.concat([frame, extra], axis=1)
