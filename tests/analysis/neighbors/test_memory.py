"""The memory budget of the neighbour engines: what the joins hold is sized to memory_limit."""

from __future__ import annotations

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, approximate_knn, exact_knn
from embgeo.analysis._core import available_memory, resolve_memory_limit
from embgeo.analysis.datasets import make_anisotropic
from embgeo.analysis.neighbors import approximate, exact


def test_the_default_limit_is_half_the_available_memory_and_bad_limits_are_refused():
    assert 0 < resolve_memory_limit(None) <= available_memory()
    assert resolve_memory_limit(2**30) == 2**30
    for bad in (0, -1, "1 GB", True):
        with pytest.raises(EmbeddingInputError, match="memory_limit"):
            resolve_memory_limit(bad)


def test_join_bytes_counts_what_the_join_allocates():
    # 1,000,000 points, 96-d projection, 128 candidates, 64 probes of 1,000 lists, k = 32
    need = approximate.join_bytes(1_000_000, 96, 1000, 64, 32, 128)
    assert need == 1_000_000 * (384 + 2048 + 256 + 128 + 32 + 384)


def test_a_tight_limit_keeps_fewer_candidates_and_the_recall_says_so():
    x = make_anisotropic(4000, 32, random_state=0)
    roomy = approximate_knn(x, k=10, recall_sample=200)
    limit = approximate.join_bytes(4000, 32, 63, 63, 10, 20)  # room for about 20 candidates a point
    tight = approximate_knn(x, k=10, recall_sample=200, memory_limit=limit)
    assert "candidates=40" in roomy.backend and "candidates=40" not in tight.backend
    assert int(tight.backend.split("candidates=")[1].rstrip(")")) >= 10
    assert tight.recall is not None and 0 < tight.recall <= 1


def test_a_join_that_cannot_fit_says_what_it_needs(monkeypatch):
    import embgeo.analysis.neighbors.approximate as approximate

    x = make_anisotropic(2000, 16, random_state=0)
    # refused before any work: not even the basis of the projection is computed
    monkeypatch.setattr(approximate, "_principal_basis", lambda *a: pytest.fail("worked before refusing"))
    with pytest.raises(EmbeddingInputError, match=r"needs about .* GiB .* more than memory_limit .* sampled report"):
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
