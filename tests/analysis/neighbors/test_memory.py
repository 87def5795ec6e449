"""The memory budget of the neighbour engines: what the joins hold is sized to memory_limit."""

from __future__ import annotations

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, approximate_knn, exact_knn, recall_at_k
from embgeo.analysis._core import available_memory, resolve_memory_limit
from embgeo.analysis.datasets import make_anisotropic
from embgeo.analysis.neighbors import exact, ivf_join


def test_the_default_limit_is_half_the_available_memory_and_bad_limits_are_refused():
    assert 0 < resolve_memory_limit(None) <= available_memory()
    assert resolve_memory_limit(2**30) == 2**30
    for bad in (0, -1, "1 GB", True):
        with pytest.raises(EmbeddingInputError, match="memory_limit"):
            resolve_memory_limit(bad)


def test_join_bytes_counts_what_the_join_allocates():
    # 1,000,000 points, 96-d projection, 1,000 lists, k = 32, 128 candidates; the shared part is the
    # projection, the order, lists and norms, and the int32 + float32 result
    shared = 384 + 8 + 8 + 4 + 8 * 32
    buffer = 16 * 128 + 8  # two slots a candidate (float32 score, int32 id), the count and threshold
    symmetric = ivf_join.join_bytes("symmetric", 1_000_000, 96, 1000, 64, 32, 128)
    # + the probed lists' index (64 int32 positions; the lists are freed before the buffers), the probe
    # bitmap (16 words), the list of each position
    assert symmetric == 1_000_000 * (shared + buffer + 64 * 4 + 16 * 8 + 4) + 65_536 * 16 * 32
    blocked = ivf_join.join_bytes("blocked", 1_000_000, 96, 1000, 130, 32, 128, 65_536)
    # buffers and the re-ranked output (int64 + float64) for one block, one slice's centroid scores
    assert blocked == 1_000_000 * shared + 65_536 * (buffer + 130 * 4 + 16 * 32) + 4096 * 4 * 1000
    assert blocked < 0.3 * symmetric


def test_a_tight_limit_keeps_fewer_candidates_and_the_recall_says_so():
    x = make_anisotropic(4000, 32, random_state=0)
    roomy = approximate_knn(x, k=10, recall_sample=200)
    limit = ivf_join.join_bytes("symmetric", 4000, 32, 62, 8, 10, 20)  # at 8 probes, room for 20 candidates
    tight = approximate_knn(x, k=10, recall_sample=200, memory_limit=limit, join="symmetric")
    assert "symmetric" in roomy.backend and "candidates=40" in roomy.backend
    assert "candidates=40" not in tight.backend
    assert int(tight.backend.split("candidates=")[1].rstrip(")")) >= 10
    assert tight.recall is not None and 0 < tight.recall <= 1


def test_where_the_buffers_do_not_fit_the_blocked_join_keeps_the_candidates(monkeypatch):
    monkeypatch.setattr(ivf_join, "MIN_BLOCK_ROWS", 1024)  # blocks smaller than the set
    x = make_anisotropic(4000, 32, random_state=0)
    limit = ivf_join.join_bytes("symmetric", 4000, 32, 62, 8, 10, 20)  # as above
    auto = approximate_knn(x, k=10, recall_sample=200, memory_limit=limit)
    assert "blocked" in auto.backend and "candidates=40" in auto.backend
    truth = exact_knn(x, k=10).indices
    assert recall_at_k(auto.indices, truth) >= 0.93 and auto.recall >= 0.93


def test_the_blocked_join_gives_the_same_table_whatever_its_block(monkeypatch):
    # A point's candidates depend on its own probes and on the order its buckets are visited in,
    # never on which other points share its block: blocks of 4,096 and one block of all agree.
    x = make_anisotropic(9000, 32, random_state=3)
    one = approximate_knn(x, k=10, recall_sample=200, join="blocked", n_probe=12)
    finished = []
    real = ivf_join.Reranker.__call__
    monkeypatch.setattr(ivf_join.Reranker, "__call__", lambda self, rows, *a: finished.append(len(rows))
                        or real(self, rows, *a))
    monkeypatch.setattr(ivf_join, "BLOCK_ROWS", 4096)
    blocks = approximate_knn(x, k=10, recall_sample=200, join="blocked", n_probe=12)
    assert finished == [4096, 4096, 808]
    np.testing.assert_array_equal(blocks.indices, one.indices)
    np.testing.assert_array_equal(blocks.distances, one.distances)


def test_a_join_that_cannot_fit_says_what_it_needs(monkeypatch):
    import embgeo.analysis.neighbors.approximate as approximate

    x = make_anisotropic(2000, 16, random_state=0)
    # refused before any work: not even the basis of the projection is computed
    monkeypatch.setattr(approximate, "_principal_basis", lambda *a: pytest.fail("worked before refusing"))
    with pytest.raises(EmbeddingInputError, match=r"needs about .* (GiB|MiB) .* more than memory_limit .* sampled report"):
        approximate_knn(x, k=10, recall_sample=100, memory_limit=1000)


def test_the_exact_self_join_streams_the_corpus_when_its_blocks_would_not_fit(monkeypatch):
    x = make_anisotropic(1500, 16, random_state=0)
    calls = []
    real = exact._symmetric_self_join
    monkeypatch.setattr(exact, "_symmetric_self_join", lambda *a, **k: calls.append(1) or real(*a, **k))
    resident = exact_knn(x, k=5, memory_limit=2**30)
    streamed = exact_knn(x, k=5, memory_limit=1500 * 16 * 4 - 1)
    assert calls == [1]  # only the first kept the corpus resident
    np.testing.assert_array_equal(resident.indices, streamed.indices)


def test_the_report_refuses_a_join_that_cannot_fit_before_its_sample_search(monkeypatch):
    import embgeo.analysis.neighbors.approximate as approximate
    import embgeo.analysis.report.full_report as full_report
    from embgeo.analysis import geometry_report

    x = make_anisotropic(3000, 16, random_state=0)
    monkeypatch.setattr(approximate, "resolve_memory_limit", lambda limit: 1000)
    monkeypatch.setattr(full_report, "cosine_and_dot_sample", lambda *a: pytest.fail("searched before refusing"))
    with pytest.raises(EmbeddingInputError, match="more than memory_limit .* sampled report"):
        geometry_report(x, k=5, exact=False)
