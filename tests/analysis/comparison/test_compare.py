"""compare() and apply_transform(): known answers on synthetic spaces, and directions on real words."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis import TRANSFORMS, Comparison, apply_transform, compare
from embgeo.analysis import hubness_report
from embgeo.analysis.comparison import two_spaces as _compare
from embgeo.analysis.geometry.isotropy import isotropy_report
from embgeo.analysis.geometry.retrieval import neighborhood_preservation

N, D, K = 300, 12, 5


def _anisotropic(n=N, d=D, seed=0) -> np.ndarray:
    """Gaussian with a decaying spectrum and an offset: a narrow cone, like raw embeddings."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * np.geomspace(4.0, 0.2, d) + 1.5).astype(np.float32)


def _clusters(n_per=60, n_clusters=4, d=D, seed=1):
    """Well-separated Gaussian clusters with their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d)) * 10.0
    labels = np.repeat(np.arange(n_clusters), n_per)
    return (centres[labels] + rng.normal(size=(len(labels), d))).astype(np.float32), labels


@pytest.fixture(scope="module")
def x():
    return _anisotropic()


@pytest.fixture(scope="module")
def same(x):
    return compare(x, x.copy(), k=K, sample=100)


@pytest.fixture(scope="module")
def rotated(x):
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(D, D)))
    # Rotating about the origin keeps every cosine and distance, so all geometry must match.
    return compare(x, x @ q, k=K, sample=100, name_a="raw", name_b="rotated")


@pytest.fixture(scope="module")
def whitened(x):
    return compare(x, apply_transform(x, "zca"), k=K, sample=100)


def test_identical_spaces_have_full_preservation_and_no_change(same):
    assert same.neighborhood_preservation == 1.0
    numeric = [r for r in same.rows if r["change"] is not None]
    assert len(numeric) > 30  # every part of the report contributed rows
    assert all(abs(r["change"]) < 1e-9 for r in numeric), [r for r in numeric if r["change"]]


def test_rotation_preserves_neighbours_and_isotropy(rotated):
    assert rotated.neighborhood_preservation == 1.0
    for path in ("isotropy.isoscore", "isotropy.mean_cosine", "hubness.skewness", "isotropy.effective_rank"):
        r = rotated.row(path)
        assert r["b"] == pytest.approx(r["a"], abs=1e-4), path


def test_whitening_an_anisotropic_set_raises_isoscore(whitened):
    iso = whitened.row("isotropy.isoscore")
    assert iso["a"] < 0.7 and iso["b"] > 0.95 and iso["change"] == pytest.approx(iso["b"] - iso["a"])
    assert abs(whitened.row("isotropy.mean_cosine")["b"]) < 0.02
    assert whitened.neighborhood_preservation < 1.0


def test_rows_carry_meanings_and_the_text_and_html_show_both_spaces(rotated):
    assert "Rudman" in rotated.row("isotropy.isoscore")["meaning"]  # the field's reference travels along
    text, page = repr(rotated), rotated._repr_html_()
    for needle in ("isotropy.isoscore", "hubness.skewness", "neighbourhood preservation"):
        assert needle in text
    assert "A: raw" in page and "B: rotated" in page and "isotropy.isoscore" in page
    with pytest.raises(KeyError, match="no metric"):
        rotated.row("isotropy.nothing")


def test_to_dict_is_json_safe_and_leaves_out_the_full_reports(whitened):
    d = whitened.to_dict()
    json.dumps(d, allow_nan=False)
    assert "report_a" not in d and d["neighborhood_preservation"] == whitened.neighborhood_preservation
    assert {"metric", "a", "b", "change", "meaning"} <= set(d["rows"][0])
    assert isinstance(whitened, Comparison) and whitened.report_b.isotropy.isoscore > 0.95


def test_labels_and_relevance_against_independent_answers():
    xa, labels = _clusters()
    perm = np.random.default_rng(5).permutation(len(xa))
    xb = xa[perm]  # same row count, items scrambled: structure relative to the labels is lost
    a = EmbeddingSet(xa, metadata=pd.DataFrame({"topic": labels}))
    # Relevance: each item's true 5 neighbours in A by brute force (independent of the k-NN engine).
    u = xa / np.linalg.norm(xa, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    truth = np.argsort(-sim, axis=1)[:, :K]
    c = compare(a, xb, k=K, labels="topic", relevance=[set(t) for t in truth.tolist()], sample=50)
    assert c.knn_accuracy["a"] == 1.0 and c.knn_accuracy["b"] < 0.5
    # float32 search against a float64 truth: a near-tie may swap the 5th and 6th neighbour.
    assert c.retrieval["a"]["recall_at_5"] == pytest.approx(1.0, abs=0.005)
    assert c.retrieval["a"]["ndcg_at_10"] == pytest.approx(1.0, abs=0.005)
    assert c.retrieval["b"]["recall_at_5"] < 0.3
    assert c.neighborhood_preservation < 0.2
    assert "knn_accuracy" in repr(c) and "retrieval.recall_at_5" in repr(c)


def test_query_rows_exclude_themselves():
    xa, _ = _clusters(n_per=30)
    # Query 0 is judged relevant to itself only: with its own row excluded, it can never be found.
    c = compare(xa, xa, k=K, relevance=[{0}, {1}], queries=np.array([0, 1]), sample=50)
    assert c.retrieval["a"]["recall_at_5"] == 0.0


def test_different_item_counts():
    c = compare(_anisotropic(200), _anisotropic(150, seed=2), k=K, sample=50)
    assert c.neighborhood_preservation is None and c.row("n")["change"] == -50
    # ... and says so, where a reader looks: the repr, the HTML page and to_dict (issue 15, defect 5)
    assert len(c.notes) == 1 and "neighbourhood preservation" in c.notes[0] and "200" in c.notes[0]
    assert c.notes[0] in repr(c) and "left out" in c._repr_html_() and c.to_dict()["notes"] == list(c.notes)
    with pytest.raises(EmbeddingInputError, match="same items"):
        compare(_anisotropic(200), _anisotropic(150), k=K, labels=np.zeros(200))


def test_bad_labels_and_queries():
    x = _anisotropic(100)
    with pytest.raises(EmbeddingInputError, match="no metadata column 'topic'"):
        compare(x, x, k=K, labels="topic", sample=20)
    with pytest.raises(EmbeddingInputError, match="without relevance"):
        compare(x, x, k=K, queries=np.arange(3), sample=20)
    with pytest.raises(EmbeddingInputError, match="query rows"):
        compare(x, x, k=K, relevance=[{1}], queries=np.array([100]), sample=20)


# --------------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("method", sorted(TRANSFORMS))
def test_apply_transform_leaves_the_input_untouched_and_keeps_items(method):
    x = _anisotropic(200)
    x[:, 3] += 40.0  # a rogue dimension, so "rogue" has something to remove
    before = x.copy()
    meta = pd.DataFrame({"text": [f"w{i}" for i in range(200)]})
    weights = 1.0 / np.arange(1, 201)
    s = EmbeddingSet(x, metadata=meta, weights=weights, name="toy")
    out = apply_transform(s, method)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(s.vectors, before)
    assert out is not s and out.n == 200 and out.name == f"toy | {method}"
    assert out.metadata.equals(meta) and np.array_equal(out.weights, weights)
    assert not np.array_equal(out.vectors[:, :5], before[:, :5])


def test_apply_transform_uses_weights_where_asked():
    x = _anisotropic(400)
    w = 1.0 / np.arange(1, 401)
    s = EmbeddingSet(x, weights=w)
    p = w / w.sum()
    z = apply_transform(s, "zipfian").vectors.astype(np.float64)
    np.testing.assert_allclose((z * p[:, None]).T @ z, np.eye(D), atol=1e-3)  # p-weighted identity
    centred = apply_transform(s, "center").vectors
    np.testing.assert_allclose(centred.mean(axis=0), 0, atol=1e-4)  # uniform mean by default
    weighted = apply_transform(s, "center", weighted=True).vectors.astype(np.float64)
    np.testing.assert_allclose(p @ weighted, 0, atol=1e-4)


def test_apply_transform_errors():
    x = _anisotropic(100)
    with pytest.raises(EmbeddingInputError, match="needs item weights"):
        apply_transform(x, "zipfian")
    with pytest.raises(EmbeddingInputError, match="unknown transform 'pca'"):
        apply_transform(x, "pca")
    with pytest.raises(EmbeddingInputError, match="'abtt'.*unexpected keyword"):
        apply_transform(x, "abtt", k=3)
    assert apply_transform(x, "abtt", n_components=2).dim == D


# --------------------------------------------------------------------------------------------- real words


@pytest.fixture(scope="module")
def words():
    from embgeo.analysis.datasets import load_sample

    w = load_sample("words")
    rows = np.sort(np.random.default_rng(0).choice(w.n, 3000, replace=False))
    return w.subset(rows)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["center", "pca-whiten", "zipfian"])
def test_post_processing_directions_on_real_word_embeddings(words, method):
    """The direction of each change on 3,000 real MiniLM word vectors (weights = word frequencies).

    Mean cosine goes to 0 (all three remove the common mean direction). IsoScore rises sharply for
    the whitenings; centring leaves it unchanged because IsoScore is computed from the covariance,
    which a shift does not change (only the cosine row normalisation perturbs it slightly). Hubness
    skewness fell for all three on this sample and on the full 20,000 words (removing the common
    direction removes the hubs it creates; Radovanovic et al. 2010), by a wide margin, so we assert
    the fall. Every transform changes neighbour lists: overlap with the raw space is below 1.
    """
    raw_iso, raw_hub = isotropy_report(words), hubness_report(words, k=10)
    out = apply_transform(words, method)
    iso, hub = isotropy_report(out), hubness_report(out, k=10)
    assert raw_iso.mean_cosine > 0.15 and abs(iso.mean_cosine) < 0.02
    if method == "center":
        assert iso.isoscore == pytest.approx(raw_iso.isoscore, abs=0.02)
    else:
        assert iso.isoscore > raw_iso.isoscore + 0.25
    assert hub.skewness < raw_hub.skewness - 0.2
    overlap = neighborhood_preservation(words, out, k=10)
    assert 0.3 < overlap < 0.95


def test_a_given_report_of_a_is_reused_and_checked(monkeypatch):
    from embgeo.analysis.report.full_report import geometry_report

    rng = np.random.default_rng(11)
    a = (rng.normal(size=(250, 12)) + 1.0).astype(np.float32)
    b = a - a.mean(axis=0)
    whole = compare(a, b, k=5, sample=100)
    rep_a = geometry_report(EmbeddingSet(a), k=5, sample=100, random_state=0)
    calls = []
    real = _compare.geometry_report
    monkeypatch.setattr(_compare, "geometry_report", lambda es, **kw: calls.append(es.n) or real(es, **kw))
    reused = compare(a, b, k=5, sample=100, report_a=rep_a)
    assert calls == [250]  # only B's report was computed
    assert reused.report_a is rep_a
    assert [r["a"] for r in reused.rows] == [r["a"] for r in whole.rows]
    assert [r["b"] for r in reused.rows] == [r["b"] for r in whole.rows]
    with pytest.raises(EmbeddingInputError, match="report_a describes .* k=5"):
        compare(a, b, k=6, sample=100, report_a=rep_a)
    with pytest.raises(EmbeddingInputError, match="metric='euclidean'"):
        compare(a, b, k=5, metric="euclidean", sample=100, report_a=rep_a)
