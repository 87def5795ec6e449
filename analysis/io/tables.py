"""Tables (pandas DataFrames, Arrow columns) split into vectors, weights and metadata columns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._core import EmbeddingInputError
from ..embeddings import ANNBenchmark

#: Column or key names tried, in order, when the caller does not name the vectors.
VECTOR_NAMES = ("vectors", "vector", "embeddings", "embedding", "emb")
#: Integer columns with these names are row ids (``Unnamed: 0`` is a pandas index written to CSV),
#: kept as metadata rather than read as vector components.
ID_COLUMNS = ("id", "idx", "index", "unnamed: 0")


@dataclass
class Loaded:
    """What a reader found: vectors plus whatever came with them, before validation."""

    vectors: Any
    metadata: Any = None
    weights: Any = None
    benchmark: ANNBenchmark | None = None


def is_name_list(x) -> bool:
    return isinstance(x, (list, tuple)) and all(isinstance(c, str) for c in x) and len(x) > 0



def from_frame(df, *, vectors, metadata, weights, where: str) -> Loaded:
    """Split a pandas DataFrame into vectors, weights and metadata."""
    columns = [str(c) for c in df.columns]
    df = df.set_axis(columns, axis=1)
    w = None
    if isinstance(weights, str):
        w = column(df, weights, where, "weights").to_numpy()
    keep_meta = list(metadata) if is_name_list(metadata) else None
    for col in keep_meta or []:
        column(df, col, where, "metadata")

    if isinstance(vectors, str):
        x = vector_column(column(df, vectors, where, "vectors"), vectors, where)
        used = [vectors]
    elif is_name_list(vectors):
        for col in vectors:
            column(df, col, where, "vectors")
        x = numeric_block(df, list(vectors), where)
        used = list(vectors)
    elif vectors is None:
        named = set(keep_meta or []) | ({weights} if isinstance(weights, str) else set())
        x, used = auto_vectors(df, exclude=named, where=where)
    else:
        raise EmbeddingInputError(f"vectors= must be a column name or a list of names, got {vectors!r}")

    rest = [c for c in columns if c not in used and c != weights]
    if keep_meta is not None:
        rest = keep_meta
    meta = df[rest].reset_index(drop=True) if rest else None
    return Loaded(x, meta, w)


def column(df, col: str, where: str, role: str):
    if col not in df.columns:
        raise EmbeddingInputError(
            f"{where}: no column {col!r} for {role}; columns are {listing(df.columns)}")
    return df[col]


def listing(items, most: int = 20) -> str:
    """``['a', 'b', ...]`` for names, ``[3, 7, ...]`` for row numbers and lengths."""
    items = [n if isinstance(n, (int, np.integer)) else str(n) for n in items]
    shown = ", ".join(repr(n) if isinstance(n, str) else str(int(n)) for n in items[:most])
    return f"[{shown}{', ...' if len(items) > most else ''}]"


def is_text_or_object(s) -> bool:
    import pandas as pd

    return s.dtype == object or pd.api.types.is_string_dtype(s.dtype)


def is_listlike_column(s) -> bool:
    """True for an object column whose values are sequences (or JSON-list strings)."""
    if not is_text_or_object(s):
        return False
    first = s.dropna()
    if first.empty:
        return False
    v = first.iloc[0]
    if isinstance(v, str):
        return v.lstrip().startswith("[")
    return isinstance(v, (list, tuple, np.ndarray))


def auto_vectors(df, *, exclude: set, where: str):
    listlike = [c for c in df.columns if c not in exclude and is_listlike_column(df[c])]
    named = [c for c in listlike if c.lower() in VECTOR_NAMES]
    if len(listlike) == 1 or len(named) == 1:
        col = named[0] if len(named) == 1 else listlike[0]
        return vector_column(df[col], col, where), [col]
    if len(listlike) > 1:
        raise EmbeddingInputError(
            f"{where}: several columns hold lists {listing(listlike)}; choose one with vectors=")
    ids = {c for c in df.columns if c.lower() in ID_COLUMNS and df[c].dtype.kind in "iu"}
    numeric = [c for c in df.columns if c not in exclude | ids and looks_numeric(df[c], c, where)]
    if not numeric:
        raise EmbeddingInputError(
            f"{where}: found no vector column (a column of lists, or numeric columns); columns are "
            f"{listing(df.columns)}; name one with vectors=")
    return numeric_block(df, numeric, where), numeric


def looks_numeric(s, col: str, where: str) -> bool:
    """A numeric column; an object column that is *mostly* numbers is an error, not metadata."""
    if s.dtype.kind in "fiu":
        return True
    if not is_text_or_object(s):
        return False
    import pandas as pd

    values = s.dropna()
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna().to_numpy()
    if len(values) and bad.mean() < 0.5 and bad.any():
        rows = values.index[bad]
        raise EmbeddingInputError(
            f"{where}: column {col!r} is numeric except for non-numeric values at rows "
            f"{listing(rows[:5])} (e.g. {values[bad].iloc[0]!r}); fix them or name the vector "
            "columns with vectors=")
    return False


def numeric_block(df, cols: list[str], where: str) -> np.ndarray:
    block = df[cols]
    bad = [c for c in cols if block[c].dtype.kind not in "fiu"]
    if bad:
        raise EmbeddingInputError(f"{where}: vector columns {listing(bad)} are not numeric")
    return block.to_numpy(dtype=np.float32)


def vector_column(s, col: str, where: str) -> np.ndarray:
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
            f"{lengths[0]} values but rows {listing(odd[:5])} have {listing(lengths[odd[:5]])}")
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


def check_csv_widths(path, sep: str, *, header: bool) -> None:
    """Refuse a CSV row with fewer fields than the first row (the header, or the first data row): pandas
    reads the missing fields as NaN, which would then be reported as NaN values rather than as the
    short row it is. Blank lines are skipped, as pandas skips them."""
    import csv

    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, Path(path).stat().st_size))  # a JSON-list cell can be long
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            reader, width, row, line, short = csv.reader(fh, delimiter=sep), None, -1 if header else 0, 0, []
            for fields in reader:
                start, line = line + 1, reader.line_num  # a quoted cell may span lines
                if not fields:
                    continue
                if width is None:
                    width = len(fields)
                    if header:
                        row = 0
                        continue
                elif len(fields) < width:
                    short.append((start, row, len(fields)))
                row += 1
    finally:
        csv.field_size_limit(limit)
    if not short:
        return
    ref = f"the header has {width}" if header else f"the first row has {width}"
    if len(short) == 1:
        (ln, r, k), = short
        where = f"line {ln} (data row {r}) has {k} field{'s' * (k != 1)} but {ref}"
    else:
        lines, rows, counts = zip(*short)
        where = (f"{len(short)} rows have too few fields ({ref}): lines {listing(lines)} (data rows "
                 f"{listing(rows)}) have {listing(counts)}")
    raise EmbeddingInputError(f"{where}; pandas would read the missing fields as NaN. Complete the "
                              "row, or check the separator and quoting")


def frame(cols: dict):
    if not cols:
        return None
    import pandas as pd

    return pd.DataFrame(cols)


def split_rest(df, x: np.ndarray, *, metadata, weights) -> Loaded:
    """``x`` with weights and metadata from the non-vector columns of a table."""
    w = None
    if isinstance(weights, str):
        w = column(df, weights, "table", "weights").to_numpy()
        df = df.drop(columns=[weights])
    if is_name_list(metadata):
        for c in metadata:
            column(df, c, "table", "metadata")
        df = df[list(metadata)]
    return Loaded(x, df if len(df.columns) else None, w)


def arrow_is_list(t) -> bool:
    import pyarrow as pa

    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
        pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))


def arrow_vectors(chunked, col: str, offset: int = 0) -> np.ndarray:
    """An (n, d) float32 array from a list column, checking for nulls and ragged rows.

    ``offset``: the row number of the column's first row in its file, for messages."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not arrow_is_list(chunked.type):
        raise EmbeddingInputError(f"column {col!r} has type {chunked.type}, not a list of numbers")
    if not hasattr(chunked, "num_chunks"):  # one Array (a record batch's column)
        arr = chunked
    else:
        arr = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    n = len(arr)
    if arr.null_count:
        rows = np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))
        raise EmbeddingInputError(f"column {col!r} is null at rows {listing(rows[:5] + offset)}")
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if n else 0
        odd = np.flatnonzero(lengths != d)
        if len(odd):
            raise EmbeddingInputError(
                f"column {col!r} has rows of different lengths (ragged): row {offset} has {d} values but "
                f"rows {listing(odd[:5] + offset)} have {listing(lengths[odd[:5]])}")
    # flatten() honours slicing offsets; nulls inside a vector become NaN and are reported later
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(n, d)


def tensor_to_numpy(t) -> np.ndarray:
    t = t.detach().cpu()
    try:
        return t.numpy()
    except TypeError:  # bfloat16 and friends have no NumPy dtype; widen (a new tensor)
        return t.float().numpy()
