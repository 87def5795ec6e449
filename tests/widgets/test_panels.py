"""The Transforms, Index health and Compare panels, headless.

Each test drives the view's controls (dropdowns, buttons) and checks that the page shows the numbers
that the analysis functions return when called directly.
"""

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from embgeo.analysis import EmbeddingSet, apply_transform, compare, index_report
from embgeo.analysis.datasets import make_anisotropic
from embgeo.widgets import Dashboard
from embgeo.widgets._options import INDEX_SWEEP
from embgeo.widgets._html import format_number
from embgeo.widgets._options import TABS


def open_tab(dash: Dashboard, name: str) -> None:
    dash.tabs.selected_index = TABS.index(name)


def table_rows(page: str, css_class: str) -> dict[str, list[str]]:
    """The cells of an HTML table in the page, keyed by each row's first cell."""
    table = re.search(rf"<table class='[^']*{css_class}'>(.*?)</table>", page, re.S).group(1)
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def aniso():
    """500 points in a narrow cone with two rogue dimensions: centring and whitening change it visibly."""
    x = make_anisotropic(500, 32, n_rogue=2, random_state=0)
    md = pd.DataFrame({"text": [f"word {i}" for i in range(500)], "label": [f"group {i % 4}" for i in range(500)]})
    return EmbeddingSet(x, md, name="aniso")


@pytest.fixture
def one_faiss_thread():
    """faiss builds HNSW graphs in parallel, in a varying order; one thread makes recall reproducible."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


# ---------------------------------------------------------------------------------- transform playground


def test_centring_in_the_playground_shows_compare_numbers(aniso):
    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform.value = "center"
    assert d.transform_params == {}  # centring has no parameters
    d.transform_apply.click()
    assert d.error.value == ""
    direct = compare(aniso, apply_transform(aniso, "center"), metric="cosine", k=d.controller.k, labels="label")
    cards = {c.metric: c for c in d.transform_cards}
    mean_cos = cards["isotropy.mean_cosine"]
    assert mean_cos.before > 0.5 and abs(mean_cos.after) < 0.01  # the cone is gone
    assert mean_cos.after == pytest.approx(direct.row("isotropy.mean_cosine")["b"], abs=1e-12)
    assert mean_cos.before == pytest.approx(direct.row("isotropy.mean_cosine")["a"], abs=1e-12)
    assert cards["hubness.skewness"].after == pytest.approx(direct.row("hubness.skewness")["b"], abs=1e-12)
    assert cards["neighborhood_preservation"].after == pytest.approx(direct.neighborhood_preservation)
    assert cards["knn_accuracy"].after == pytest.approx(direct.knn_accuracy["b"])
    page = d.transform_results.children[0].value
    assert f"{format_number(mean_cos.before)} &rarr; {format_number(mean_cos.after)}" in page


def test_a_transformed_set_downloads_and_opens_as_the_dataset(aniso):
    import base64
    import io

    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform.value = "abtt"
    d.transform_params["n_components"].value = 2
    d.transform_apply.click()
    expected = apply_transform(aniso, "abtt", n_components=2)
    d.transform_download.click()
    name, data = re.search(r"download='([^']+)' href='data:[^;]+;base64,([^']+)'", d.transform_link.value).groups()
    assert name.endswith(".npy") and "abtt" in name
    np.testing.assert_array_equal(np.load(io.BytesIO(base64.b64decode(data))), expected.vectors)
    d.transform_open.click()  # every tab now shows the transformed set; the original is Compare's given set
    assert d.controller.data.name == expected.name and d.controller.compare_with is not None
    np.testing.assert_array_equal(d.controller.data.vectors, expected.vectors)
    assert d.controller.compare_with.name == "aniso" and d.compare_choice.value == ("given",)
    assert d.error.value == "" and "embgeo-card" in d.overview.value


def test_playground_projections_are_float32_pca_maps_before_and_after(aniso):
    from embgeo.analysis import project

    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform.value = "zca"
    d.transform_apply.click()
    before, after = d.transform_figures
    for fig in (before, after):
        trace = fig.data[-1]
        assert isinstance(trace, go.Scattergl) and trace.x.dtype == np.float32 and len(trace.x) == 500
    expected = project(apply_transform(aniso, "zca", n_components=32, eps=1e-6), "pca", 2, metric="cosine")
    np.testing.assert_allclose(after.data[-1].x, expected.coords[:, 0], atol=1e-5)
    np.testing.assert_allclose(before.data[-1].x, d.controller.projection("pca", 2).coords[:, 0], atol=1e-6)
    assert "word 0" == before.data[-1].hovertext[0] == after.data[-1].hovertext[0]


def test_parameter_controls_follow_the_transform_and_results_are_cached(aniso, monkeypatch):
    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform.value = "zca"
    assert {k: w.value for k, w in d.transform_params.items()} == {"n_components": 32, "eps": 1e-6}
    d.transform.value = "rogue"
    assert list(d.transform_params["mode"].options) == ["remove", "standardize"]
    d.transform.value = "abtt"
    d.transform_params["n_components"].value = 2
    d.transform_apply.click()
    np.testing.assert_array_equal(d.controller.transformed("abtt", {"n_components": 2}).vectors,
                                  apply_transform(aniso, "abtt", n_components=2).vectors)
    first = d.transform_cards
    import embgeo.analysis as analysis

    monkeypatch.setattr(analysis, "compare", lambda *a, **k: pytest.fail("recomputed"))
    d.transform_apply.click()  # the same setting again: served from the cache
    assert d.transform_cards == first
    # the set has no item weights, so Zipfian whitening is not offered and the help says why
    assert "zipfian" not in [v for _, v in d.transform.options] and "no weights" in d.transform_help.value
    weighted = EmbeddingSet(aniso.vectors, weights=np.arange(1, 501, dtype=float))
    assert "zipfian" in Dashboard(weighted, background=False).controller.available_transforms()


def test_this_sets_report_is_computed_once_for_every_transform_tried(aniso, monkeypatch):
    from embgeo.analysis.report import full_report as _report

    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    computed = []
    real = _report.geometry_report
    monkeypatch.setattr(_report, "geometry_report", lambda es, **kw: computed.append(es.name) or real(es, **kw))
    monkeypatch.setattr("embgeo.analysis.comparison.two_spaces.geometry_report", _report.geometry_report)
    monkeypatch.setattr("embgeo.analysis.geometry_report", _report.geometry_report)
    monkeypatch.setattr("embgeo.widgets._controller.geometry_report", _report.geometry_report)
    for method in ("center", "abtt"):
        d.transform.value = method
        d.transform_apply.click()
        assert d.error.value == ""
    assert computed.count("aniso") == 1 and len(computed) == 3  # A once, then each B
    first, second = (d.controller.transform_comparison(m) for m in ("center", "abtt"))
    assert first.report_a is second.report_a


# ---------------------------------------------------------------------------------- index health


def test_index_health_shows_index_report_numbers(aniso, one_faiss_thread):
    d = Dashboard(aniso, background=False)
    open_tab(d, "Index health")
    c = d.controller
    assert not any(key[0] == "index" for key in c.cache.keys())  # opening the tab builds nothing
    assert [k for k, box in d.index_kinds.items() if box.value] == ["hnsw", "ivf"]
    d.index_holdout.value = 50
    said, bar = [], []
    c.observe(lambda ch: said.append(ch.new), "status")
    c.observe(lambda ch: bar.append(ch.new), "progress")
    d.index_run.click()
    assert d.error.value == ""
    # the bar moves and the status names each index as it is built (it sat at one stage for a whole sweep)
    assert "building hnsw" in said and "building ivf" in said and len(set(v for v in bar if 50 < v < 98)) >= 5
    direct = index_report(aniso, k=c.k, metric="cosine", holdout=50, indexes=("hnsw", "ivf"),
                          index_params={k: INDEX_SWEEP[k] for k in ("hnsw", "ivf")}, random_state=0)
    shown = {r["label"]: r["recall"] for r in c.index_rows(d.index_report)}
    expected = {s.label: s.recall_at_k for s in direct.indexes}
    assert shown == pytest.approx(expected, abs=1e-12)
    assert len(set(expected.values())) > 3  # the settings differ, so a mix-up would show
    page = "".join(w.value for w in d.index_results.children if hasattr(w, "value"))
    table = table_rows(page, "embgeo-index")
    for label, recall in expected.items():
        assert table[label.replace("&", "&amp;")][0] == format_number(recall)
    pareto = d.index_figures["pareto"]
    assert [t.name for t in pareto.data] == ["hnsw", "ivf", "Pareto frontier"]
    assert pareto.data[1].y.dtype == np.float32 and pareto.layout.xaxis.type == "log"
    np.testing.assert_allclose(pareto.data[1].y, [s.recall_at_k for s in direct.indexes if s.kind == "ivf"],
                               atol=1e-6)
    buckets = d.index_figures["buckets"]
    assert len(buckets.data) == len(direct.indexes)
    np.testing.assert_allclose(buckets.data[0].y, [b["recall"][direct.indexes[0].label]
                                                   for b in direct.difficulty.recall_by_bucket], atol=1e-6)
    assert f"{direct.reachability.never_retrieved_rate:.1%} of the corpus" in page
    hardest = table_rows(page, "embgeo-hardest")
    assert list(hardest) == [h["label"] for h in direct.difficulty.hardest]
    assert all(label.startswith("word ") for label in hardest)  # the metadata text, not row numbers


def test_index_health_without_a_kind_or_under_dot_says_why(aniso):
    d = Dashboard(aniso, background=False, metric="dot")
    open_tab(d, "Index health")
    for box in d.index_kinds.values():
        box.value = False
    d.index_run.click()
    assert "choose at least one index kind" in d.error.value and "Traceback" not in d.error.value
    assert d.index_run in d.panels["Index health"].children[0].children  # the controls stay
    d.index_kinds["ivf"].value = True
    d.index_run.click()
    assert d.error.value == ""
    assert "not defined for the dot product" in d.index_results.children[-1].value


# ---------------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def other_model(aniso):
    """The same items as seen by 'another model': a random rotation of the vectors plus noise."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    x = aniso.vectors @ q + rng.normal(scale=0.05, size=aniso.vectors.shape)
    return EmbeddingSet(x.astype(np.float32), aniso.metadata, name="other model")


def test_compare_table_is_compare_to_dict(aniso, other_model):
    d = Dashboard(aniso, compare_with=other_model, background=False)
    open_tab(d, "Compare")
    assert d.compare_choice.value == ("given",)  # the set passed in is offered first
    d.compare_run.click()
    assert d.error.value == ""
    direct = compare(aniso, other_model, metric="cosine", k=d.controller.k, labels="label").to_dict()
    shown = [(r["metric"], r["a"], r["b"], r["change"]) for r in d.compare_rows if r["metric"] != "knn_accuracy"]
    assert shown == [(r["metric"], r["a"], r["b"], r["change"]) for r in direct["rows"]]
    page = d.compare_results.children[0].value
    table = table_rows(page, "embgeo-compare")
    for r in direct["rows"]:
        assert table[r["metric"]][:2] == [format_number(r["a"]), format_number(r["b"])]
    assert table["knn_accuracy"][:2] == [format_number(direct["knn_accuracy"]["a"]),
                                         format_number(direct["knn_accuracy"]["b"])]
    assert f"{direct['neighborhood_preservation']:.1%} of each item" in page
    assert "embgeo-warning" not in page  # same items, same texts
    # headline rows first, in words, rates as percentages; every number below, folded
    headline = table_rows(page, "embgeo-headline")
    antihubs = next(r for r in direct["rows"] if r["metric"] == "hubness.antihub_rate")
    assert headline["antihubs"][:2] == [f"{antihubs['a']:.1%}", f"{antihubs['b']:.1%}"]
    assert list(headline)[:2] == ["mean cosine", "IsoScore"]
    assert page.index("embgeo-headline") < page.index("<details><summary>All ") < page.index("embgeo-compare'")


def test_compare_with_a_set_of_another_size_says_so(clustered):
    d = Dashboard(clustered, compare_with=clustered.vectors[:120], background=False)
    open_tab(d, "Compare")
    d.compare_run.click()
    page = d.compare_results.children[0].value
    assert "different numbers of items: A has 300 rows, B has 120" in page
    assert "k-NN overlap</b>" not in page and d.error.value == ""
    assert table_rows(page, "embgeo-compare")["n"][:2] == ["300", "120"]


def test_a_set_too_small_to_compare_shows_the_error_in_the_page(clustered):
    d = Dashboard(clustered, compare_with=clustered.vectors[:8], background=False)
    open_tab(d, "Compare")
    d.compare_run.click()
    assert "Input problem: too few points for k=10" in d.error.value and "Traceback" not in d.error.value
    assert "could not be computed" in d.compare_results.children[0].value
    assert d.compare_run in d.panels["Compare"].children[0].children


def test_compare_offers_the_playground_transform_and_reuses_it(aniso, monkeypatch):
    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform.value = "abtt"
    d.transform_params["n_components"].value = 3
    d.transform_apply.click()
    key = ("transform", "abtt", (("n_components", 3),))
    labels = dict((v, k) for k, v in d.compare_choice.options)
    assert "(Transforms tab)" in labels[key] and ("sample", "words") in labels
    import embgeo.analysis as analysis

    monkeypatch.setattr(analysis, "compare", lambda *a, **k: pytest.fail("recomputed"))
    open_tab(d, "Compare")
    d.compare_choice.value = key
    d.compare_run.click()
    assert d.comparison.neighborhood_preservation == next(
        c.after for c in d.transform_cards if c.metric == "neighborhood_preservation")


def test_the_mpnet_sample_compares_with_minilm_over_the_same_items():
    """Two real models out of the box: the Compare tab offers MiniLM over mpnet's 2,000 sentences, row for
    row, so the similarity block is shown, with the numbers representation_similarity gives directly."""
    from embgeo.analysis import load_sample, representation_similarity

    mpnet = load_sample("sentences_mpnet")
    d = Dashboard(mpnet, background=False)
    key = ("sample", "sentences", "sentences_mpnet")
    labels = dict((v, k) for k, v in d.compare_choice.options)
    assert "over the same 2,000 items" in labels[key]
    open_tab(d, "Compare")
    d.compare_choice.value = key
    d.compare_run.click()
    assert d.error.value == ""
    direct = representation_similarity(mpnet, load_sample("sentences", items_of="sentences_mpnet"),
                                       k=d.controller.k, progress=False)
    assert d.compare_similarity.debiased_cka == pytest.approx(direct.debiased_cka, rel=1e-9)
    assert d.compare_similarity.debiased_cka > 0.5
    rows = table_rows(d.compare_results.children[0].value, "embgeo-similarity")
    assert rows["debiased CKA"][0] == format_number(direct.debiased_cka)


def test_texts_that_disagree_row_by_row_are_flagged(clustered):
    shuffled = clustered.subset(np.random.default_rng(0).permutation(300), name="shuffled")
    d = Dashboard(clustered, compare_with=shuffled, background=False)
    assert any("texts differ in" in n for n in d.controller.comparison_notes(("given",)))


def test_a_metric_change_clears_results_of_the_old_metric(aniso):
    d = Dashboard(aniso, background=False)
    open_tab(d, "Transforms")
    d.transform_apply.click()
    assert "embgeo-card" in d.transform_results.children[0].value
    d.metric.value = "euclidean"
    assert "press Apply" in d.transform_results.children[0].value
    d.transform_apply.click()
    assert d.controller.is_cached("comparison", ("transform", "center", ()), "euclidean", d.controller.k, True)


def test_the_retrieval_tab_shows_the_reports_numbers_and_runs_reduction_and_compression(clustered):
    from embgeo.analysis import compression_report, geometry_report, hubness_reduction_report
    from embgeo.widgets._options import COMPARE_SAMPLE

    d = Dashboard(clustered, background=False)
    open_tab(d, "Retrieval")
    assert d.error.value == ""
    report = geometry_report(clustered, k=10, sample=COMPARE_SAMPLE, random_state=0)
    conc = table_rows(d.retrieval_page.value, "embgeo-concentration")
    median = format_number(report.concentration.relative_contrast_median)
    assert conc["relative contrast (median)"][0].startswith(f"<b>{median} [")
    cvd = table_rows(d.retrieval_page.value, "embgeo-cosine-dot")
    assert cvd["neighbour lists shared (mean Jaccard)"][0] == f"<b>{format_number(report.cosine_vs_dot.jaccard_mean)}</b>"
    d.reduce_run.click()
    direct = hubness_reduction_report(clustered, k=10)
    reduced = {m.split(" &larr;")[0]: v for m, v in table_rows(d.reduce_page.value, "embgeo-reduction").items()}
    assert set(reduced) == set(direct.skewness_after) and f"<b>{direct.best_method}</b>" in d.reduce_page.value
    assert f"{direct.best_method} &larr; best" in d.reduce_page.value
    assert all(reduced[m][0] == format_number(v) for m, v in direct.skewness_after.items())
    d.compress_run.click()
    comp = compression_report(clustered, k=10, holdout=d.controller.default_holdout(), random_state=0)
    shown = re.findall(r"<td>(\d\.\d{3})</td><td>(?:yes)?</td></tr>", d.compress_page.value)
    assert shown == [f"{s.recall_at_k:.3f}" for s in comp.settings] and d.error.value == ""


def test_the_retrieval_tab_draws_index_size_scaling_as_the_analysis_computes_it(clustered):
    from embgeo.analysis import index_scaling

    d = Dashboard(clustered, background=False)
    open_tab(d, "Retrieval")
    assert d._scaling_box.layout.display == "none" and d.scaling_page.value == ""
    d.scaling_run.click()
    assert d.error.value == ""
    direct = index_scaling(clustered, k=10, holdout=d.controller.default_holdout(), kind="hnsw", random_state=0)
    rows = table_rows(d.scaling_page.value, "embgeo-scaling")
    assert list(rows) == [f"{n:,}" for n in direct.sizes]
    assert [cells[0] for cells in rows.values()] == [f"{r:.3f}" for r in direct.recall_at_k]
    assert f"{direct.predicted_recall(10 * direct.sizes[-1]):.3f}</b> at {10 * direct.sizes[-1]:,} rows" in d.scaling_page.value
    figure = d._scaling_box.children[0]
    assert d._scaling_box.layout.display is None
    assert [t.name for t in figure.data] == ["recall@10", "fitted trend", "neighbour margin"]
    assert list(figure.data[0].y) == pytest.approx(direct.recall_at_k, abs=1e-6)
    assert d.controller.progress == 95 or d.controller.progress == 100
    d.metric.value = "euclidean"  # another metric: the old curve is hidden, not shown as this one's
    open_tab(d, "Overview")
    open_tab(d, "Retrieval")
    assert d._scaling_box.layout.display == "none"
