"""Lazy row-chunked arrays for the Dask engine: chunks of whole rows (rows x full dimension), read by
the workers themselves (an ``.npy`` file is memory-mapped on the worker; nothing passes through the
client)."""

from __future__ import annotations

import os

import numpy as np

from .._core import EmbeddingInputError, is_dask_array
from .cluster import require_dask

#: Rows of one chunk at most by default: 65,536 x 384 float32 is 100 MB, and a pair of such chunks is
#: 3.3e12 flops, tens of seconds on one core: long enough that Dask's ~1 ms a task is noise. Bigger
#: chunks are also faster per flop: each pair task starts its rows' lists empty, and the first tiles
#: admit most of their cells (36 pair tasks of 12,500-row chunks of 100,000 x 384 took 1.5 x the
#: single-process time on two workers, 3 of 65,536 rows 1.37 x).
CHUNK_ROWS = 65_536
#: Smaller sets are cut into at least this many chunks (so two workers share 10 pair tasks), each a
#: whole number of the pair kernel's 4,096-row tiles.
MIN_CHUNKS = 4
TILE_ROWS = 4_096


def default_chunk_rows(n: int) -> int:
    """Rows per chunk for n rows: CHUNK_ROWS, or fewer (whole tiles) so that there are about MIN_CHUNKS."""
    rows = -(-int(n) // MIN_CHUNKS)
    return int(min(CHUNK_ROWS, max(TILE_ROWS, -(-rows // TILE_ROWS) * TILE_ROWS)))


def from_npy(path, *, chunk_rows: int | None = None):
    """A float32 ``dask.array`` of a 2-D ``.npy`` file, ``chunk_rows`` whole rows a chunk, each chunk
    read by the worker that needs it from its own memory map of the file (which every worker must
    see at the same path: a shared or local disk); other numeric dtypes are converted per chunk."""
    return from_npy_shards([path], chunk_rows=chunk_rows)


def from_npy_shards(paths, *, chunk_rows: int | None = None):
    """A float32 ``dask.array`` of ``.npy`` shards, their rows one after another in the order given
    (``embgeo.analysis.io.load`` of a directory or glob reads them in file-name order), each shard cut
    into chunks of at most ``chunk_rows`` rows that the workers read from their own memory maps of the
    files (at the same paths: a shared or local disk), converted to float32 per chunk."""
    require_dask()
    import dask.array as da

    maps, width = [], None
    for path in paths:
        path = os.path.abspath(os.fspath(path))
        try:
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise EmbeddingInputError(f"{path}: not a readable .npy file ({exc})") from None
        if mapped.ndim != 2 or not np.issubdtype(mapped.dtype, np.number):
            raise EmbeddingInputError(f"{path}: expected a 2-D numeric array, got shape {mapped.shape} of {mapped.dtype}")
        if width is not None and mapped.shape[1] != width:
            raise EmbeddingInputError(f"{path}: {mapped.shape[1]} dimensions, where the shards before it have {width}")
        width = mapped.shape[1]
        maps.append(mapped)
    total = sum(m.shape[0] for m in maps)
    rows = default_chunk_rows(total) if chunk_rows is None else max(1, int(chunk_rows))
    parts = [part for m in maps if len(m) for part in _mapped_chunks(m, rows)]
    return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)


def _read_map(path: str, offset: int, dtype: str, n: int, d: int, start: int, stop: int) -> np.ndarray:
    rows = np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=(n, d))[start:stop]
    return np.array(rows, dtype=np.float32)


def _file_map(x):
    """``(path, byte offset)`` of a C-ordered numeric matrix that is (a view of) a named file's memory
    map, else None."""
    m = x
    while m is not None and not isinstance(m, np.memmap):
        m = getattr(m, "base", None)
    if m is None or m.filename is None or x.ndim != 2 or x.dtype.kind not in "fiu" or not x.flags.c_contiguous:
        return None
    return m.filename, int(m.offset + x.__array_interface__["data"][0] - m.__array_interface__["data"][0])


def cluster_rows(x, *, chunk_rows: int | None = None):
    """``x`` as the workers should read it: a dask array as it is (whole-row chunks); a memory map of a
    file as float32 chunks each worker maps (and converts) from the file itself, the same path being
    visible to the workers (a shared or local disk); anything else shipped in chunks from here."""
    require_dask()
    import dask.array as da

    if is_dask_array(x) or _file_map(x) is None:
        return row_chunks(x, chunk_rows=chunk_rows)
    parts = _mapped_chunks(x, default_chunk_rows(x.shape[0]) if chunk_rows is None else max(1, int(chunk_rows)))
    return parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)


def _mapped_chunks(x, chunk_rows: int) -> list:
    """Dask arrays of ``chunk_rows`` rows of a file's memory map ``x``, each read by a worker from the file."""
    import dask
    import dask.array as da

    where = _file_map(x)
    if where is None:  # a Fortran-ordered file: its rows are not contiguous on disk
        return [row_chunks(x, chunk_rows=chunk_rows)]
    path, offset = where
    n, d = x.shape
    return [da.from_delayed(dask.delayed(_read_map)(path, offset, x.dtype.str, n, d, s, min(n, s + chunk_rows)),
                            shape=(min(n, s + chunk_rows) - s, d), dtype=np.float32)
            for s in range(0, n, chunk_rows)]


def row_chunks(x, *, chunk_rows: int | None = None):
    """``x`` (a dask array, or anything array-like) as a float32 dask array of whole-row chunks."""
    require_dask()
    import dask.array as da

    if not is_dask_array(x):
        x = np.asarray(x)
        if x.ndim != 2:
            raise EmbeddingInputError(f"expected a 2-D array of shape (n, d), got shape {x.shape}")
        rows = default_chunk_rows(len(x)) if chunk_rows is None else max(1, int(chunk_rows))
        return da.from_array(x.astype(np.float32, copy=False), chunks=(rows, x.shape[1]))
    if x.ndim != 2:
        raise EmbeddingInputError(f"expected a 2-D array of shape (n, d), got shape {x.shape}")
    if len(x.chunks[1]) != 1:  # every task needs whole rows
        x = x.rechunk({1: -1})
    return x.astype(np.float32)
