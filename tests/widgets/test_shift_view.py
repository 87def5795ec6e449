"""The dashboard's Shift tab, headless: queries given as an array, the report's cards, table and figures."""

import numpy as np
import plotly.graph_objects as go

from embgeo.analysis import EmbeddingSet
from embgeo.widgets import Dashboard
from embgeo.widgets._options import TABS
from embgeo.widgets._shift_view import shift_map_figure


def _sets():
    rng = np.random.default_rng(0)
    corpus = (rng.normal(size=(300, 8)) * np.geomspace(3.0, 0.5, 8)).astype(np.float32)
    queries = (rng.normal(size=(80, 8)) * np.geomspace(3.0, 0.5, 8) + 1.5).astype(np.float32)
    return corpus, queries


def test_shift_tab_shows_the_report_of_given_queries():
    corpus, queries = _sets()
    d = Dashboard(corpus, background=False)
    d.tabs.selected_index = TABS.index("Shift")
    assert "press Run" in d.shift_page.value and d.error.value == ""
    d.set_shift_queries(queries, name="shifted")
    d.run_shift()
    assert d.error.value == "", d.error.value
    page = d.shift_page.value
    assert "shifted" in page and "embgeo-card" in page and "Centroid gap" in page
    assert "center on the pooled mean" in page and "Hardest queries" in page and "classifier AUC" in page
    report = d.shift_report
    assert f"overlap@{report.k} with raw" in page
    assert report.transforms[0]["overlap_at_k"] == 1.0  # the raw space retrieves its own top-k
    assert report.n_queries == 80 and report.mmd_p_value < 0.05  # the planted offset is found
    pca, buckets = (box.children[0] for box in (d._shift_boxes["map"], d._shift_boxes["buckets"]))
    assert [t.name.split(":")[0] for t in pca.data] == ["corpus", "queries"]
    assert isinstance(pca.data[0], go.Scattergl) and pca.data[0].x.dtype == np.float32
    assert len(pca.data[0].x) == 300 and len(pca.data[1].x) == 80
    assert isinstance(buckets.data[0], go.Bar) and len(buckets.data[0].x) == len(report.by_bucket)
    d.close()


def test_shift_tab_reports_bad_queries_in_the_page():
    corpus, _ = _sets()
    d = Dashboard(corpus, background=False)
    d.tabs.selected_index = TABS.index("Shift")
    d.set_shift_queries(EmbeddingSet(np.ones((20, 5), dtype=np.float32) + np.arange(5), name="wrong"))
    d.run_shift()
    assert "dimension 5" in d.error.value and "dimension 8" in d.error.value
    assert "could not be computed" in d.shift_page.value
    d.close()


def test_the_pca_map_is_the_pooled_principal_plane():
    """Against an independent SVD of the pooled (unit) rows: the same two coordinates up to each axis's sign."""
    corpus, queries = _sets()
    fig = shift_map_figure(EmbeddingSet(corpus), EmbeddingSet(queries), "cosine")
    pooled = np.vstack([corpus, queries]).astype(np.float64)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    centred = pooled - pooled.mean(axis=0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    got = np.vstack([np.c_[t.x, t.y] for t in fig.data]).astype(np.float64)
    np.testing.assert_allclose(np.abs(got), np.abs(xy), rtol=1e-4, atol=1e-5)
