"""Compression without an index: recall@k against exact search and bytes per vector."""

from __future__ import annotations

import json
import math

import faiss
import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError
from embgeo.analysis.index.compression import _binary_codes, _search, compression_report


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """PQ training on a shared 2-core machine is far faster single-threaded; restore afterwards."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _decaying(n, d, seed=0):
    """Gaussian whose variance decays along the coordinates (so prefixes are the top directions)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * np.geomspace(3.0, 0.1, d)).astype(np.float32)


def _by_method(rep):
    out = {}
    for s in rep.settings:
        out.setdefault(s.method, []).append(s)
    return out


@pytest.fixture(scope="module")
def report():
    x = _decaying(2500, 32)
    rep = compression_report(x, k=10, holdout=200, metric="cosine", backend="numpy",
                             levels={"pca": [32, 16, 8, 4], "prefix": [32, 16, 8, 4], "random": [32, 16, 8],
                                     "binary": [0, 10], "pq": [(8, 6), (4, 6)]})
    return x, rep


def test_recall_falls_as_compression_strengthens(report):
    _, rep = report
    m = _by_method(rep)
    for method in ("pca", "prefix", "random", "pq"):
        recalls = [s.recall_at_k for s in m[method]]  # listed from weakest to strongest compression
        nbytes = [s.bytes_per_vector for s in m[method]]
        assert nbytes == sorted(nbytes, reverse=True)
        assert all(b < a for a, b in zip(recalls, recalls[1:])), (method, recalls)
    no_rerank, rerank = m["binary"]
    assert rerank.recall_at_k > no_rerank.recall_at_k and rerank.needs_full_vectors


def test_int8_is_high_and_full_dimension_is_exact(report):
    _, rep = report
    m = _by_method(rep)
    assert m["int8"][0].recall_at_k > 0.95 and m["int8"][0].bytes_per_vector == 32
    assert m["prefix"][0].params == {"dims": 32} and m["prefix"][0].recall_at_k == 1.0
    assert m["pca"][0].recall_at_k > 0.99  # a rotation: only float rounding can reorder
    # Prefixes of coordinates sorted by variance are nearly the principal directions.
    for p, pre in zip(m["pca"], m["prefix"]):
        assert abs(p.recall_at_k - pre.recall_at_k) < 0.15


def test_bytes_per_vector_are_the_code_sizes(report):
    _, rep = report
    m = _by_method(rep)
    assert [s.bytes_per_vector for s in m["pca"]] == [128, 64, 32, 16]
    assert m["binary"][0].bytes_per_vector == 4  # 32 bits
    assert [s.bytes_per_vector for s in m["pq"]] == [math.ceil(8 * 6 / 8), math.ceil(4 * 6 / 8)]
    for s in rep.settings:
        assert s.compression_ratio == pytest.approx(128 / s.bytes_per_vector)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["full_bytes_per_vector"] == 128 and "exact" not in d
    assert all("per_query_recall" not in s for s in d["settings"])


def test_pca_finds_a_hidden_low_rank_subspace_where_prefixes_fail():
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(32, 6)))[0]  # a random 6-D subspace of R^32
    x = (rng.normal(size=(1500, 6)) @ basis.T).astype(np.float32)
    before = x.copy()
    rep = compression_report(x, k=10, holdout=100, metric="euclidean", methods=("pca", "prefix"),
                             levels={"pca": [6], "prefix": [6]}, backend="numpy")
    np.testing.assert_array_equal(x, before)
    pca, prefix = rep.settings
    assert pca.recall_at_k > 0.99  # 6 components hold all the variance
    assert prefix.recall_at_k < 0.7


def test_binary_search_ranks_by_hamming_distance():
    x = _decaying(300, 24, seed=1)
    q = _decaying(20, 24, seed=2)
    codes, qcodes = _binary_codes(x, q)
    found = _search(codes, qcodes, 5, "dot", "numpy")
    bits, qbits = codes > 0, qcodes > 0
    hamming = (qbits[:, None, :] != bits[None, :, :]).sum(-1)  # independent: count differing bits
    got = np.take_along_axis(hamming, found, axis=1)
    np.testing.assert_array_equal(np.sort(got, axis=1), np.sort(hamming, axis=1)[:, :5])


def test_bad_levels_and_methods_are_refused():
    x = _decaying(300, 12)
    with pytest.raises(EmbeddingInputError, match="unknown compression"):
        compression_report(x, holdout=20, methods=("lsh",))
    with pytest.raises(EmbeddingInputError, match="divide"):
        compression_report(x, holdout=20, methods=("pq",), levels={"pq": [(5, 4)]}, backend="numpy")
    with pytest.raises(EmbeddingInputError, match="kept dimensions"):
        compression_report(x, holdout=20, methods=("pca",), levels={"pca": [13]}, backend="numpy")
