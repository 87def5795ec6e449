"""geometry_report: known answers on synthetic sets, one shared k-NN search, JSON and offline HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, sampled_report
from embgeo.analysis.embeddings import embedding_set as _embedding_set
from embgeo.analysis.geometry import concentration as _concentration, cosine_dot as _cosine_dot
from embgeo.analysis.geometry import scale as _scale
from embgeo.analysis.neighbors import copies as _copies  # the intrinsic-dimension searches run there
from embgeo.analysis.report.full_report import GeometryReport, geometry_report
from embgeo.analysis.datasets import (
    make_anisotropic,
    make_isotropic_gaussian,
    make_planted_hubs,
    make_subspace,
)

#: The paths of to_dict() documented in the README: they must stay exactly these.
DOCUMENTED_KEYS = {
    "": ("n", "dim", "metric"),
    "isotropy": ("mean_cosine", "isoscore", "partition_isotropy", "effective_rank", "participation_ratio",
                 "common_direction_share", "rogue_dimensions"),
    "intrinsic_dimension": ("twonn", "mle", "pca_95", "lid_median"),
    "hubness": ("k", "skewness", "robin_hood", "antihub_rate", "hub_occupancy"),
    "concentration": ("relative_contrast_median", "expansion_median"),
}


@pytest.fixture(scope="module")
def anisotropic():
    x, truth = make_anisotropic(1500, 32, n_rogue=2, rogue_scale=3.0, random_state=1, return_truth=True)
    return x, truth


@pytest.fixture(scope="module")
def aniso_report(anisotropic):
    return geometry_report(anisotropic[0], k=10, sample=400)


# --------------------------------------------------------------------------------------------- known answers


def test_isotropic_gaussian_is_isotropic():
    x = make_isotropic_gaussian(1500, 16, random_state=0)
    r = geometry_report(x, k=10, sample=300)
    assert r.isotropy.isoscore > 0.95
    assert abs(r.isotropy.mean_cosine) < 0.01
    assert r.isotropy.rogue_dimensions == []
    # cosine of random pairs centres on 0 with spread 1/sqrt(d)
    assert abs(r.similarity.random_mean) < 0.01
    assert r.similarity.random_std == pytest.approx(1 / np.sqrt(16), rel=0.1)


def test_subspace_dimension_recovered():
    x = make_subspace(2000, 5, 48, random_state=3)
    r = geometry_report(x, k=10, sample=300)
    assert r.intrinsic_dimension.twonn == pytest.approx(5, rel=0.10)
    assert r.intrinsic_dimension.mle == pytest.approx(5, rel=0.15)
    # the normalised patch spans 5 directions of the unit sphere (plus the offset direction)
    assert r.intrinsic_dimension.pca_95 <= 6


def test_planted_hubs_are_flagged():
    x, hubs = make_planted_hubs(1200, 32, n_hubs=4, random_state=2)
    r = geometry_report(x, k=10, sample=300)
    top = r.hubness.top_hubs["index"].to_numpy()[:4]
    assert set(top) == set(hubs)
    assert r.hubness.skewness > 3
    assert r.hubness.max_k_occurrence > 100


def test_anisotropic_rogue_dimensions_and_cone(aniso_report, anisotropic):
    _, truth = anisotropic
    r = aniso_report
    assert {d["dim"] for d in r.isotropy.rogue_dimensions} == set(truth.rogue_dims)
    assert r.isotropy.mean_cosine > 0.5
    assert r.isotropy.isoscore < 0.5


# --------------------------------------------------------------------------------------------- one search


@pytest.fixture
def search_log(monkeypatch):
    """Record every exact_knn call made by the report's parts (corpus rows, queries, k)."""
    calls = []
    real = _embedding_set.exact_knn

    def counting(corpus, queries=None, k=10, **kw):
        qi = kw.get("query_indices")
        calls.append({"rows": np.shape(corpus)[0], "queries": queries, "query_indices": qi, "k": k})
        return real(corpus, queries, k, **kw)

    for module in (_embedding_set, _concentration, _copies, _scale, _cosine_dot):
        monkeypatch.setattr(module, "exact_knn", counting)
    return calls


def _full_self_joins(calls, n):
    return [c for c in calls if c["rows"] == n and c["queries"] is None and c["query_indices"] is None]


def test_knn_self_join_computed_once(search_log, anisotropic):
    x = anisotropic[0]
    es = EmbeddingSet(x)
    r = geometry_report(es, k=10, sample=300)
    joins = _full_self_joins(search_log, es.n)
    assert len(joins) == 1
    assert joins[0]["k"] == r.table_k == 32
    # every other search is a query sample or a subsample block, never a second full table
    for c in search_log:
        if not any(c is j for j in joins):
            assert c["rows"] < es.n or len(c["query_indices"]) <= 300
    # a second report on the same set reuses the cached table
    geometry_report(es, k=5, sample=300)
    assert len(_full_self_joins(search_log, es.n)) == 1


def test_approximate_neighbors_carry_recall(search_log, anisotropic):
    es = EmbeddingSet(anisotropic[0])
    r = geometry_report(es, k=10, sample=300, exact=False)
    assert _full_self_joins(search_log, es.n) == []  # no exact table was built behind the scenes
    assert not r.exact and 0.0 < r.recall <= 1.0
    assert not r.hubness.exact and r.hubness.recall == r.recall
    d = r.to_dict()
    for part in ("intrinsic_dimension", "hubness", "similarity", "near_duplicates"):
        assert d[part]["neighbors_recall"] == pytest.approx(r.recall)
        assert d[part]["neighbors_exact"] is False
    assert all(not t.exact for t in es.cached_tables())  # the caller's cache holds no fake exact table
    # the exact sample search is the truth: half of its 300 queries tune, the other half measure
    assert es.neighbors(r.table_k, exact=False).recall_sample == 150


def test_timings_cover_every_part(aniso_report):
    # sample_search: the one query-sample search that concentration and cosine vs dot share
    assert set(aniso_report.timings) == {"neighbors", "isotropy", "intrinsic_dimension", "hubness", "sample_search",
                                         "concentration", "similarity", "near_duplicates", "cosine_vs_dot"}
    assert all(t >= 0 for t in aniso_report.timings.values())


# --------------------------------------------------------------------------------------------- options


def test_weighted_isotropy_when_weights_present(anisotropic):
    x = anisotropic[0][:600]
    w = np.random.default_rng(0).zipf(1.5, size=len(x)).astype(float)
    r = geometry_report(EmbeddingSet(x, weights=w), k=5, sample=200)
    assert r.weighted_isotropy is not None and r.weighted_isotropy.weighted
    assert r.weighted_isotropy.mean_cosine != pytest.approx(r.isotropy.mean_cosine, abs=1e-9)
    assert r.cosine_vs_dot.norm_frequency_spearman is not None
    assert geometry_report(EmbeddingSet(x, weights=w), k=5, sample=200, weighted=False).weighted_isotropy is None
    with pytest.raises(EmbeddingInputError, match="weights"):
        geometry_report(x, k=5, weighted=True)


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_other_metrics_say_where_they_deviate(metric, anisotropic):
    x = anisotropic[0][:800]
    r = geometry_report(x, metric=metric, k=5, sample=200)
    assert r.metric == r.hubness.metric == metric
    assert any("cosine statistics" in note for note in r.notes)
    assert r.similarity is not None and r.near_duplicates is not None
    if metric == "dot":
        assert r.intrinsic_dimension.metric == "cosine" and r.concentration.metric == "cosine"
    else:
        assert r.intrinsic_dimension.metric == "euclidean"


def test_input_untouched_and_bad_input(anisotropic):
    x = anisotropic[0][:300].copy()
    before = x.copy()
    geometry_report(x, k=5, sample=100)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(EmbeddingInputError, match="2k"):
        geometry_report(x[:15], k=10)
    with pytest.raises(EmbeddingInputError):
        geometry_report(x, metric="manhattan")
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(EmbeddingInputError, match="NaN|inf|finite"):
        geometry_report(bad, k=5)


# --------------------------------------------------------------------------------------------- outputs


def test_to_dict_has_documented_keys_and_is_json(aniso_report):
    d = aniso_report.to_dict()
    for part, keys in DOCUMENTED_KEYS.items():
        section = d if part == "" else d[part]
        for key in keys:
            assert key in section, f"{part}.{key} missing"
    assert d["n"] == 1500 and d["dim"] == 32 and d["metric"] == "cosine"
    text = json.dumps(d, allow_nan=False)
    assert len(text) < 200_000  # per-point arrays are left out of the summary
    assert "lid" not in d["intrinsic_dimension"]


def test_text_repr_names_every_part(aniso_report):
    text = repr(aniso_report)
    for part in ("isotropy:", "intrinsic_dimension:", "hubness:", "concentration:", "similarity:"):
        assert part in text
    assert isinstance(aniso_report, GeometryReport)
    assert "embgeo-result" in aniso_report._repr_html_()


def test_html_is_standalone_and_offline(aniso_report, tmp_path):
    from plotly.offline import get_plotlyjs

    path = tmp_path / "report.html"
    page = aniso_report.to_html(path)
    assert path.read_text(encoding="utf-8") == page
    assert get_plotlyjs()[:500] in page  # plotly.js inline
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*['\"]?(https?:)?//", page, flags=re.I)
    assert page.count("Plotly.newPlot") == 5  # spectrum, cumulative variance, N_k, local ID, similarity
    for title in ("eigenspectrum", "Cumulative explained variance", "k-occurrence", "Local intrinsic dimension",
                  "Cosine similarity distributions"):
        assert title in page


def test_analysis_does_not_import_plotly():
    code = "import sys, embgeo.analysis; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shared_sample_search_gives_the_standalone_concentration(anisotropic):
    # the report's one sample search must reproduce concentration_report on the same seed
    from embgeo.analysis import concentration_report

    x = anisotropic[0]
    rng = np.random.default_rng(7)
    seeds = [int(rng.integers(2**31 - 1)) for _ in range(4)]  # the report's draws: id, hubness, conc, cvd
    r = geometry_report(x, k=10, sample=300, random_state=7)
    alone = concentration_report(x, k=10, sample=300, random_state=seeds[2])
    np.testing.assert_array_equal(r.concentration.query_indices, alone.query_indices)
    assert r.concentration.relative_contrast_median == pytest.approx(alone.relative_contrast_median, rel=1e-5)
    assert r.concentration.expansion_ci == pytest.approx(alone.expansion_ci, rel=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_zero_rows_under_euclidean_or_dot_leave_only_the_cosine_parts(metric, mode):
    """Issue 15: under euclidean or dot a zero vector is a point like any other, and the report used to
    refuse it, advising the metric the user had chosen. Now the cosine parts leave those rows out, and
    a note says so; the same report of the rows without them gives the same cosine parts."""
    x = np.random.default_rng(4).normal(size=(300, 12)).astype(np.float32)
    zeros = [3, 150, 299]
    with_zeros = x.copy()
    with_zeros[zeros] = 0
    run = (lambda d: geometry_report(d, metric=metric, k=5, sample=None)) if mode == "full" else \
        (lambda d: sampled_report(d, metric=metric, k=5, sample=400, subsample=400))
    report = run(with_zeros)
    note = [n for n in report.notes if "all-zero vectors" in n]
    assert len(note) == 1 and "3 of 300 rows" in note[0] and "[3, 150, 299]" in note[0]
    assert report.n == 300 and report.isotropy.n == 300  # the metric's own parts keep every row
    clean = run(np.delete(with_zeros, zeros, axis=0))
    assert report.near_duplicates.to_dict() == clean.near_duplicates.to_dict()
    assert report.cosine_vs_dot.to_dict() == clean.cosine_vs_dot.to_dict()
    with pytest.raises(EmbeddingInputError, match=r"3 of 300 rows are all-zero.*\[3, 150, 299\]"):  # cosine refuses
        (geometry_report if mode == "full" else sampled_report)(with_zeros, k=5)
