"""How the map colours points by a metadata column: which columns can, categories lumped past a
dozen, wide positive numbers on a log scale. Data logic only; :mod:`._figures` draws the result."""

from __future__ import annotations

import numpy as np

from . import _options as O


def colour_columns(metadata) -> list[str]:
    """Metadata columns that can colour a map: numbers, and text with few enough distinct values. Text
    that is (nearly) unique per item, such as the words themselves or ids, would colour every point
    differently and say nothing."""
    from pandas.api.types import is_numeric_dtype

    if metadata is None:
        return []
    limit = max(O.COLOUR_CATEGORIES, len(metadata) // 2)
    return [str(c) for c in metadata.columns if is_numeric_dtype(metadata[c]) or metadata[c].nunique() <= limit]


def numeric_colours(values: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """The values and the colour bar's title: log10 for a positive column spanning more than
    :data:`LOG_COLOUR_RATIO` (word frequencies on a linear scale gave nearly every point one colour)."""
    low, high = np.nanmin(values), np.nanmax(values)
    if low > 0 and high / low > O.LOG_COLOUR_RATIO:
        return np.log10(values), f"log10 {name}"
    return values, name


def category_codes(col) -> tuple[np.ndarray, list[str]]:
    """Float32 codes and names of a column's categories: all of them in name order when there are at most
    :data:`COLOUR_CATEGORIES`, else the commonest that many (by count, then name) and one last
    ``"other (N more)"`` category for the rest."""
    counts = col.value_counts()
    if len(counts) <= O.COLOUR_CATEGORIES:
        codes, cats = col.factorize(sort=True)
        return codes.astype(np.float32), [str(c) for c in cats]
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = [name for name, _ in ranked[:O.COLOUR_CATEGORIES]]
    code = {name: i for i, name in enumerate(top)}
    values = col.map(code).fillna(len(top)).to_numpy(np.float32)
    return values, [str(t) for t in top] + [f"{O.OTHER_CATEGORY} ({len(counts) - len(top)} more)"]
