"""Float32 matrices too large for memory, kept in an unnamed scratch file on disk.

A float16 ``.npy``, a ``.bvecs`` file, the row groups of a Parquet file or a directory of shards is
not a float32 array every kernel can read in place. Rather than convert it whole in RAM (a 10,000,000
x 384 float16 file would take 15 GB of memory), :func:`scratch_matrix` converts it block by block into
a float32 memory map on disk: the kernel pages it in and out as it does for a float32 file, so memory
stays bounded by the page cache, not by n.

The file is created with :func:`tempfile.TemporaryFile`, which on Linux has no name in any directory
(``O_TMPFILE``, or unlinked at once): nothing is left behind when the work fails, is interrupted
(Ctrl-C) or the process is killed, and the disk space returns when the last view of the map is
dropped. ``EMBGEO_SCRATCH`` names the directory (default: the system's temporary directory); a
directory without room for the matrix gives a clear error before anything is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .memory import size_text
from .validation import EmbeddingInputError, float32_block

#: Converted matrices up to this size stay in memory; larger ones go to a scratch map.
IN_MEMORY_BYTES = 512 * 2**20
#: Disk space left free beside a scratch matrix.
DISK_MARGIN_BYTES = 256 * 2**20


def scratch_dir() -> Path:
    """Where scratch matrices go: ``$EMBGEO_SCRATCH``, else the system's temporary directory."""
    return Path(os.environ.get("EMBGEO_SCRATCH") or tempfile.gettempdir())


def is_scratch_map(x) -> bool:
    """True when ``x`` (or the array it views) is a scratch map made by :func:`scratch_matrix`."""
    while x is not None:
        if isinstance(x, np.memmap):
            return x.filename is None
        x = getattr(x, "base", None)
    return False


def is_file_map(x) -> bool:
    """True when ``x`` (or the array it views) maps a named file: the caller's data on disk."""
    while x is not None:
        if isinstance(x, np.memmap):
            return x.filename is not None
        x = getattr(x, "base", None)
    return False


def float32_matrix_from_blocks(n: int, d: int, blocks: Iterable[tuple[int, np.ndarray]], *,
                               what: str = "vectors") -> np.ndarray:
    """A read-only float32 (n, d) matrix filled from ``(start, block)`` pairs, converted block by block.

    In memory up to :data:`IN_MEMORY_BYTES`, else a :func:`scratch_matrix`. Every row must be
    covered by exactly the blocks given (a shortfall raises: a file that said more rows than it holds).
    """
    if n * d * 4 <= IN_MEMORY_BYTES:
        out = np.empty((n, d), dtype=np.float32)
        _fill(out, blocks, n, what)
        out.flags.writeable = False
        return out
    return scratch_matrix(n, d, blocks, what=what)


def scratch_matrix(n: int, d: int, blocks: Iterable[tuple[int, np.ndarray]], *,
                   what: str = "vectors") -> np.ndarray:
    """A read-only float32 (n, d) memory map on an unnamed scratch file, filled from ``blocks``.

    Raises
    ------
    EmbeddingInputError
        When the scratch directory has no room for ``n * d * 4`` bytes (the message names the size,
        the directory and how to choose another), or the blocks do not cover the ``n`` rows.
    """
    need = int(n) * int(d) * 4
    directory = scratch_dir()
    try:
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        raise EmbeddingInputError(f"{what}: the scratch directory {directory} is not usable ({exc}); "
                                  "set EMBGEO_SCRATCH to a writable directory") from None
    if need + DISK_MARGIN_BYTES > free:
        raise EmbeddingInputError(
            f"{what}: {n:,} x {d} as float32 needs {size_text(need)} of scratch disk in {directory}, which has "
            f"{size_text(free)} free; set EMBGEO_SCRATCH to a directory on a larger disk, or convert the data to "
            "one float32 .npy file (which is read in place, with no copy)")
    with tempfile.TemporaryFile(dir=directory) as fh:  # no name anywhere: nothing to clean up, ever
        fh.truncate(need)
        out = np.memmap(fh, dtype=np.float32, mode="r+", shape=(n, d))
    try:
        _fill(out, blocks, n, what)
        out.flush()
    except BaseException:
        del out  # unmapping frees the disk space now, not when the traceback goes
        raise
    out.flags.writeable = False
    return out


def _fill(out: np.ndarray, blocks, n: int, what: str) -> None:
    filled = 0
    for start, block in blocks:
        out[start:start + len(block)] = float32_block(block, start, what)
        filled += len(block)
    if filled != n:
        raise EmbeddingInputError(f"{what}: expected {n:,} rows, the data held {filled:,} (truncated?)")


def is_dask_array(x) -> bool:
    """True for a ``dask.array.Array`` (checked by type name: no import of Dask where it is absent)."""
    return type(x).__name__ == "Array" and type(x).__module__.startswith("dask.array")


def dask_array_rows(x, *, what: str = "vectors") -> np.ndarray:
    """A ``dask.array``'s rows as a read-only float32 matrix, computed one row chunk at a time (on
    the current scheduler: a ``distributed.Client`` if one is active) and converted as each arrives,
    in memory when small, else into a scratch map (:func:`float32_matrix_from_blocks`): never the
    whole array, nor a wider copy of it, in memory at once (``np.asarray`` computed it whole)."""
    import math

    if x.ndim != 2:
        raise EmbeddingInputError(f"{what}: expected a 2-D dask array of shape (n, d), got {x.ndim} dimensions")
    if any(math.isnan(c) for c in (*x.chunks[0], *x.chunks[1])):
        raise EmbeddingInputError(f"{what}: the dask array's chunk sizes are unknown (an array made from a "
                                  "dataframe or by filtering); call x.compute_chunk_sizes() first")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise EmbeddingInputError(f"{what}: expected a real numeric dask array, got dtype {x.dtype}")
    x = x.rechunk({1: -1})  # whole rows in every chunk
    starts = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]]).astype(int)
    blocks = ((int(s), np.asarray(x.blocks[i, 0].compute())) for i, s in enumerate(starts))
    return float32_matrix_from_blocks(int(x.shape[0]), int(x.shape[1]), blocks, what=f"{what} (a dask array)")
