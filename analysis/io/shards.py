"""A directory or glob of ``.npy`` or Parquet shards, read as one set.

Large corpora are written in shards (one file per worker or per day). :func:`read_shards` reads them in
file-name order into one float32 matrix, one block of one shard at a time, so no shard is ever whole in
memory: the result is in memory when small and a scratch map on disk otherwise (see
:mod:`embgeo.analysis._core.scratch`). Parquet shards' other columns become metadata; a categorical
``shard`` column names each row's file.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from .._core import EmbeddingInputError, float32_matrix_from_blocks, iter_row_blocks
from .formats import open_npy, parquet_blocks, parquet_vector_column
from .tables import Loaded, is_name_list, listing

#: Extensions a shard may have (one kind per set).
SHARD_FORMATS = (".npy", ".parquet", ".pq")


def shard_paths(source: Path) -> list[Path] | None:
    """The shard files a directory or glob pattern names, in name order; None for a single file."""
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in SHARD_FORMATS)
        where = f"directory {source}"
    elif not source.exists() and glob.has_magic(str(source)):
        found = sorted(Path(p) for p in glob.glob(str(source)) if Path(p).is_file())
        where = f"pattern {source}"
    else:
        return None
    if not found:
        raise EmbeddingInputError(f"the {where} names no {'/'.join(SHARD_FORMATS)} files")
    kinds = {".npy" if p.suffix.lower() == ".npy" else ".parquet" for p in found}
    odd = [p.name for p in found if p.suffix.lower() not in SHARD_FORMATS]
    if odd:
        raise EmbeddingInputError(f"the {where} names files that are not shards ({listing(odd)}); shards are "
                                  f"{'/'.join(SHARD_FORMATS)} files")
    if len(kinds) > 1:
        raise EmbeddingInputError(f"the {where} mixes .npy and Parquet shards; keep one kind per set")
    return found


def read_shards(paths: list[Path], *, vectors, metadata, weights) -> Loaded:
    """The shards as one :class:`~.tables.Loaded`: vectors in file order, metadata with a ``shard`` column."""
    if isinstance(weights, str) or (is_name_list(metadata) and paths[0].suffix.lower() == ".npy"):
        raise EmbeddingInputError("weights=, and metadata= given as names, do not apply to .npy shards "
                                  "(pass the arrays)")
    if paths[0].suffix.lower() == ".npy":
        if vectors is not None:
            raise EmbeddingInputError(".npy shards hold a single array each; vectors= does not apply")
        parts, tables = [_npy_part(p) for p in paths], None
    else:
        parts, tables = zip(*(_parquet_part(p, vectors) for p in paths))
    d = parts[0][1]
    for p, (rows, dim, _) in zip(paths, parts):
        if dim != d:
            raise EmbeddingInputError(f"shard {p} has dimension {dim}, but {paths[0].name} has {d}; every shard "
                                      "must have the same dimension")
    counts = np.array([rows for rows, _, _ in parts])
    starts = np.concatenate([[0], np.cumsum(counts)])

    def blocks():
        for start, (_, _, part_blocks) in zip(starts, parts):
            for local, block in part_blocks():
                yield int(start) + local, block

    x = float32_matrix_from_blocks(int(starts[-1]), d, blocks(), what=f"{len(paths)} shards from {paths[0].parent}")
    meta = _shard_metadata(paths, counts, tables, metadata)
    return Loaded(x, meta)


def _npy_part(path: Path):
    try:
        x = open_npy(path)
    except EmbeddingInputError as exc:
        msg = str(exc)  # a corrupt file's message names it already
        raise EmbeddingInputError(msg if msg.startswith(str(path)) else f"shard {path}: {msg}") from None
    if x.ndim != 2 or x.dtype.kind not in "fiu":
        raise EmbeddingInputError(f"shard {path} holds a {x.ndim}-D {x.dtype} array; shards must be 2-D numeric")
    return x.shape[0], x.shape[1], lambda: iter_row_blocks(x)


def _parquet_part(path: Path, vectors):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        col = parquet_vector_column(pf, vectors)
        if col is None:
            raise EmbeddingInputError(f"shard {path} has no list column of vectors (Parquet shards keep the "
                                      "vectors in one list column)")
        rest = pf.read(columns=[c for c in pf.schema_arrow.names if c != col]).to_pandas()
        n, d, _ = parquet_blocks(pf, col)
    except pa.ArrowException as exc:
        raise EmbeddingInputError(f"shard {path}: could not read it as Parquet: {exc}") from None
    # reopened when its blocks are read, so that a thousand shards do not hold a thousand open files
    return (n, d, lambda: parquet_blocks(pq.ParquetFile(path), col)[2]), rest


def _shard_metadata(paths, counts, tables, metadata):
    import pandas as pd

    shard = pd.Categorical.from_codes(np.repeat(np.arange(len(paths)), counts), categories=[p.name for p in paths])
    if tables is None or not any(len(t.columns) for t in tables):
        return pd.DataFrame({"shard": shard})
    meta = pd.concat(list(tables), ignore_index=True)
    if is_name_list(metadata):
        missing = [c for c in metadata if c not in meta.columns]
        if missing:
            raise EmbeddingInputError(f"no column {listing(missing)} for metadata; columns are {listing(meta.columns)}")
        meta = meta[list(metadata)]
    if "shard" not in meta.columns:
        meta.insert(0, "shard", shard)
    return meta
