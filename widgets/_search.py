"""The Projection tab's search box: find an item by its text, or a new text by its meaning.

A word or sentence that is an item's text (case aside) opens that item, as a click on it would. Any
other text is embedded offline with the bundled model (all-MiniLM-L6-v2, :mod:`embgeo.analysis.embed`)
and searched exactly against the set, when the set has that model's dimension; items whose text
contains the query are listed either way. No view here: the tab draws what :func:`search` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embgeo.analysis import EmbeddingInputError, embed, exact_knn

#: Items whose text contains the query, listed (and marked on the map) at most.
MAX_TEXT_MATCHES = 20
#: Longest query accepted (the model truncates at 256 word pieces anyway).
MAX_QUERY_CHARS = 1000


@dataclass(frozen=True)
class SearchResult:
    """What the search box found. ``how``: ``"item"`` (the query is row ``row``'s text), ``"embedded"``
    (the query was embedded and searched) or ``"text"`` (only text matches: it could not be embedded)."""

    query: str
    how: str
    row: int | None = None
    neighbours: list = field(default_factory=list)  # dicts: rank, row, text, similarity
    matches: list = field(default_factory=list)  # rows whose text contains the query
    note: str = ""

    def marked_rows(self) -> list[int]:
        """Rows to mark on the map: the item, its (or the query's) neighbours, then the text matches."""
        rows = ([] if self.row is None else [self.row]) + [t["row"] for t in self.neighbours] + self.matches
        return list(dict.fromkeys(rows))


def _text_matches(folded: list[str] | None, query: str) -> tuple[int | None, list[int]]:
    """The row whose text is the query (case-insensitive), and rows whose text contains it; ``folded``
    are the items' texts casefolded."""
    if not folded:
        return None, []
    q = query.casefold()
    exact = next((i for i, t in enumerate(folded) if t == q), None)
    contains = [i for i, t in enumerate(folded) if q in t and i != exact][:MAX_TEXT_MATCHES]
    return exact, contains


def search(controller, query: str) -> SearchResult:
    """Search the controller's set for ``query`` (see the module docstring).

    Raises
    ------
    EmbeddingInputError
        For an empty or overlong query.
    """
    query = (query or "").strip()
    if not query:
        raise EmbeddingInputError("type a word or a sentence to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise EmbeddingInputError(f"the query has {len(query):,} characters; at most {MAX_QUERY_CHARS:,}")
    data = controller.data
    # folded once per set (20,000 words: ~10 ms a search otherwise, 100 ms at 200,000 texts)
    folded = controller._cached(("casefolded texts",), lambda: [t.casefold() for t in data.texts or ()])
    exact, contains = _text_matches(folded, query)
    if exact is not None:
        return SearchResult(query, "item", row=exact, neighbours=controller.neighbor_table(exact), matches=contains,
                            note=f"row {exact}: its nearest neighbours in the original space")
    if data.dim != embed.EMBEDDING_DIM:
        return SearchResult(query, "text", matches=contains, note=(
            f"this set has {data.dim} dimensions, not the {embed.EMBEDDING_DIM} of the bundled model "
            f"({embed.MODEL_NAME}), so the query cannot be embedded: only items whose text contains it are found"))
    vector = embed.embed_texts([query], progress=False, normalize=True)
    k = min(controller.k, data.n)
    nn = exact_knn(data.vectors, vector, k=k, metric=controller.metric, validate=False)
    neighbours = [{"rank": r + 1, "row": int(j), "text": data.label(int(j)), "similarity": float(s)}
                  for r, (j, s) in enumerate(zip(nn.indices[0], np.asarray(nn.similarities)[0]))]
    return SearchResult(query, "embedded", neighbours=neighbours, matches=contains, note=(
        f"embedded with {embed.MODEL_NAME}, searched exactly ({controller.metric}): meaningful when this set was "
        "embedded with the same model, as the bundled words and sentences are"))
