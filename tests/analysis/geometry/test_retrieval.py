"""Retrieval measures against hand-computed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis.geometry.retrieval import (
    knn_classification_accuracy,
    ndcg_at,
    neighborhood_preservation,
    recall_at,
    retrieval_report,
)

# Five points on a line; neighbours by Euclidean distance are easy to list by hand.
LINE = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])


# --------------------------------------------------------------------------------------------- preservation


def test_preservation_hand_computed():
    # k = 1 on LINE: 0->1, 1->0, 2->1, 3->2, 4->3.
    # Space B moves point 2 next to point 4: B = [0, 1, 9.5, 6, 10]: 0->1, 1->0, 2->4, 3->2, 4->2.
    b = np.array([[0.0], [1.0], [9.5], [6.0], [10.0]])
    per = neighborhood_preservation(LINE, b, k=1, metric="euclidean", per_point=True)
    np.testing.assert_array_equal(per, [1, 1, 0, 1, 0])
    assert neighborhood_preservation(LINE, b, k=1, metric="euclidean") == pytest.approx(0.6)
    # k = 2: A: 0->{1,2} 1->{0,2} 2->{1,0} 3->{2,4} 4->{3,2}  (2 is 3 from both 0 and 3: the
    #           engine breaks equal distances by the lower row id, so 0)
    #        B: 0->{1,3} 1->{0,3} 2->{4,3} 3->{2,4} 4->{2,3}  overlaps 1,1,0,2,2 -> 6/10
    assert neighborhood_preservation(LINE, b, k=2, metric="euclidean") == pytest.approx(0.6)


def test_preservation_invariances_and_chance_level():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    q, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    assert neighborhood_preservation(x, 2.5 * x @ q, k=10) == 1.0
    assert neighborhood_preservation(x, x, k=10, metric="cosine", metric_b="euclidean") < 1.0
    shuffled = x[rng.permutation(len(x))]  # unrelated neighbourhoods: expected k / (n - 1)
    assert neighborhood_preservation(x, shuffled, k=10) == pytest.approx(10 / 499, abs=0.01)


def test_preservation_checks_and_reuses_cache():
    es = EmbeddingSet(np.random.default_rng(0).normal(size=(50, 4)))
    neighborhood_preservation(es, es.vectors * 2, k=5)
    assert es.cached_neighbors(5, metric="cosine") is not None
    with pytest.raises(EmbeddingInputError, match="different numbers of items"):
        neighborhood_preservation(es, es.vectors[:40], k=5)


# --------------------------------------------------------------------------------------------- recall / nDCG


def test_recall_and_ndcg_hand_computed_binary():
    retrieved = [[3, 1, 2, 0], [0, 1, 2, 3], [2, 3, 0, 1]]
    relevant = [{1, 0}, {3}, set()]  # the third query has no judgements and is left out
    assert recall_at(retrieved, relevant, k=1) == (0.0, 2)
    assert recall_at(retrieved, relevant, k=2) == (0.25, 2)  # (1/2 + 0) / 2
    assert recall_at(retrieved, relevant, k=4) == (1.0, 2)
    q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    q2 = (1 / math.log2(5)) / 1.0
    value, judged = ndcg_at(retrieved, relevant, k=4)
    assert judged == 2 and value == pytest.approx((q1 + q2) / 2)
    assert ndcg_at(retrieved, relevant, k=2)[0] == pytest.approx((1 / math.log2(3) / (1 + 1 / math.log2(3))) / 2)


def test_graded_relevance_from_pairs():
    retrieved = np.array([[2, 0, 1]])
    pairs = np.array([[0, 0, 3], [0, 1, 1], [0, 2, 0]])  # (query, corpus row, grade); grade 0 = not relevant
    dcg = 0 / 1 + 3 / math.log2(3) + 1 / math.log2(4)
    idcg = 3 / 1 + 1 / math.log2(3)
    assert ndcg_at(retrieved, pairs, k=3)[0] == pytest.approx(dcg / idcg)
    assert recall_at(retrieved, pairs, k=1) == (0.0, 1)
    assert recall_at(retrieved, pairs[:, :2], k=1) == (pytest.approx(1 / 3), 1)  # binary: rows 0, 1, 2 relevant
    assert recall_at(retrieved, pairs, k=2) == (0.5, 1)  # graded: rows 0, 1 relevant; row 0 found
    with pytest.raises(EmbeddingInputError, match="outside"):
        recall_at(retrieved, np.array([[4, 0]]), k=1)
    with pytest.raises(EmbeddingInputError, match="cover 2 queries"):
        recall_at(retrieved, [{0}, {1}], k=1)
    with pytest.raises(EmbeddingInputError, match="too few"):
        recall_at(retrieved, [{0}], k=5)


def test_retrieval_report_end_to_end():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(300, 16)).astype(np.float32)
    queries = corpus[:50] + 0.05 * rng.normal(size=(50, 16)).astype(np.float32)
    keep = corpus.copy()
    rep = retrieval_report(corpus, queries, [[i] for i in range(50)], ks=(1, 10))
    assert rep.recall == {1: 1.0, 10: 1.0} and rep.ndcg_at_10 == 1.0 and rep.n_judged == 50
    # Relevant item planted at rank 2 for every query: recall@1 = 0, nDCG = 1/log2(3).
    rep2 = retrieval_report(corpus, corpus, [[j] for j in
                            np.argsort(-(corpus / np.linalg.norm(corpus, axis=1, keepdims=True)) @
                                       (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).T, axis=1)[:, 1]],
                            ks=(1, 2))
    assert rep2.recall[1] == 0.0 and rep2.recall[2] == 1.0
    assert rep2.ndcg_at_10 == pytest.approx(1 / math.log2(3), rel=1e-6)
    np.testing.assert_array_equal(corpus, keep)
    assert "recall" in rep.to_dict()


# --------------------------------------------------------------------------------------------- kNN vote


def test_knn_accuracy_hand_computed():
    # LINE labels a a b b b. Leave-one-out, k = 2 (neighbours listed in the preservation test):
    # 0: {1 a, 2 b} tie -> nearest (1) a = a  ok
    # 1: {0 a, 2 b} tie -> nearest (0) a      ok
    # 2: {1 a, 3 b} tie -> nearest: 1 at distance 2 (3 is at 3) -> a, but true b  wrong
    # 3: {2 b, 4 b} -> b ok ; 4: {3 b, 2 b} -> b ok           => 4 / 5
    labels = ["a", "a", "b", "b", "b"]
    assert knn_classification_accuracy(LINE, labels, k=2, metric="euclidean") == pytest.approx(0.8)
    # k = 1: 0->1 a ok, 1->0 a ok, 2->1 a wrong, 3->2 b ok, 4->3 b ok => 4 / 5
    assert knn_classification_accuracy(LINE, labels, k=1, metric="euclidean") == pytest.approx(0.8)
    # k = 3: 2: {1 a, 3 b, 0 a} -> a wrong; 0: {1 a, 2 b, 3 b} -> b wrong; 1: {0, 2, 3} -> b wrong;
    # 3: {2 b, 4 b, 1 a} -> b ok; 4: {3, 2, 1} -> b ok => 2 / 5
    assert knn_classification_accuracy(LINE, labels, k=3, metric="euclidean") == pytest.approx(0.4)


def test_knn_accuracy_clusters_and_metadata_labels():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)) * 5
    y = np.repeat([0, 1, 2], 100)
    x = centres[y] + rng.normal(size=(300, 32))
    es = EmbeddingSet(x, metadata=pd.DataFrame({"label": y}))
    assert knn_classification_accuracy(es, k=10) == 1.0
    # Labels unrelated to the geometry: accuracy near chance (1/3).
    assert knn_classification_accuracy(x, rng.permutation(y), k=10) == pytest.approx(1 / 3, abs=0.1)
    with pytest.raises(EmbeddingInputError, match="labels have 5 entries"):
        knn_classification_accuracy(x, y[:5])
    with pytest.raises(EmbeddingInputError, match="pass labels"):
        knn_classification_accuracy(x)
