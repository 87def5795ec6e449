"""The Dashboard view, headless: controls drive the figures, plotly click/selection events drive the lists."""

import html

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.callbacks import Points

from embgeo.analysis import EmbeddingSet
from embgeo.widgets import Dashboard, DashboardApp
from embgeo.widgets import _figures as F
from embgeo.widgets.app import MAX_UPLOAD_BYTES, SYNTHETIC, load_upload


@pytest.fixture(scope="module")
def dash(clustered):
    d = Dashboard(clustered, background=False)
    d.tabs.selected_index = 1  # Projection
    return d


def test_overview_shows_cards_without_error(clustered):
    d = Dashboard(clustered, background=False)
    html = d.panels["Overview"].children[0].value
    assert html.count("embgeo-card ") == 6 and "Threshold:" in html and "Next:" in html
    assert d.error.value == "" and d.progress.value == 100


def test_projection_uses_float32_arrays_and_colour_switches(dash, clustered):
    trace = F.points_trace(dash.figure)
    assert isinstance(trace, go.Scattergl)
    assert isinstance(trace.x, np.ndarray) and trace.x.dtype == np.float32
    dash.color.value = "label"
    np.testing.assert_array_equal(trace.marker.color, np.arange(300) % 3)
    dash.color.value = "norm"
    np.testing.assert_allclose(trace.marker.color, np.linalg.norm(clustered.vectors, axis=1), rtol=1e-6)
    dash.color.value = "none"
    assert trace.marker.color == "#4C78A8"
    assert "kNN preservation" in dash.trust.value


def test_click_lists_original_space_neighbours(dash, clustered):
    trace = F.points_trace(dash.figure)
    trace._dispatch_on_click(Points(point_inds=[42], xs=[0.0], ys=[0.0], trace_name="points", trace_index=0), None)
    nn = clustered.neighbors(dash.controller.k, metric="cosine").indices[42]
    assert dash.controller.selected_point == 42
    listed = [f"<td>item {j}</td>" for j in nn]
    assert all(s in dash.neighbours.value for s in listed)
    # the clicked point and, less, its neighbours are enlarged on the map
    others = np.setdiff1d(np.arange(300), np.append(nn, 42))
    assert trace.marker.size[42] > trace.marker.size[nn].min() > trace.marker.size[others].max()


def test_search_finds_an_item_by_its_text_and_marks_it_with_its_neighbours(dash, clustered):
    dash.search_box.value = "ITEM 42"  # case aside, an item's text opens that item
    result = dash.search_result
    assert result.how == "item" and result.row == 42
    nn = clustered.neighbors(dash.controller.k, metric="cosine").indices[42]
    assert [t["row"] for t in result.neighbours] == list(nn)
    assert "<b>ITEM 42</b>" in dash.neighbours.value and "<td>item %d</td>" % nn[0] in dash.neighbours.value
    trace = F.points_trace(dash.figure)
    assert trace.marker.size[42] == trace.marker.size.max()
    # a text that is no item's and cannot be embedded (16 dimensions, not the model's 384): text matches only
    dash.search_box.value = "item 29"
    assert dash.search_result.how == "item"
    dash.search_box.value = "tem 29"
    found = dash.search_result
    assert found.how == "text" and found.row is None and "not the 384 of the bundled model" in found.note
    assert found.matches == [29] + list(range(290, 300))
    assert dash.error.value == ""


def test_search_embeds_a_new_sentence_with_the_bundled_model():
    from embgeo.analysis import embed_texts, exact_knn, load_sample

    words = load_sample("words").subset(range(2000), name="words2k")
    d = Dashboard(words, background=False)
    d.tabs.selected_index = 1
    d.search_box.value = "a day of the week"
    result = d.search_result
    assert result.how == "embedded" and d.error.value == ""
    direct = exact_knn(words.vectors, embed_texts(["a day of the week"], progress=False), k=d.controller.k)
    assert [t["row"] for t in result.neighbours] == list(direct.indices[0])
    assert {"monday", "sunday", "week"} & {t["text"] for t in result.neighbours}
    d.search_box.value = "   "
    assert d.search_result is result  # nothing to search: nothing happens


def test_selection_shows_subset_statistics(dash):
    trace = F.points_trace(dash.figure)
    trace._dispatch_on_selection(Points(point_inds=[0, 3, 6, 9], xs=[0] * 4, ys=[0] * 4,
                                        trace_name="points", trace_index=0), None)
    np.testing.assert_array_equal(dash.controller.selected_rows, [0, 3, 6, 9])
    assert "4 points" in dash.selection.value and "group 0 (4)" in dash.selection.value


def test_three_d_switches_trace_type(dash):
    dash.dims.value = 3
    assert isinstance(F.points_trace(dash.figure), go.Scatter3d)
    assert "no lasso" in dash.selection.value  # the user is told why selecting does nothing in 3-D
    dash.dims.value = 2
    assert isinstance(F.points_trace(dash.figure), go.Scattergl)
    assert "Lasso or box-select" in dash.selection.value


def test_other_tabs_render(dash):
    for i, name in [(2, "Spectrum"), (3, "Intrinsic dimension"), (4, "Hubness"), (5, "Transforms"),
                    (6, "Index health"), (7, "Compare")]:
        dash.tabs.selected_index = i
        assert dash.error.value == "", dash.error.value
        assert "Computing" not in str(dash.panels[name].children[0])
    spec = dash.spectrum
    assert spec.layout.yaxis.type == "log" and spec.layout.xaxis.type == "log"
    cum = spec.data[1].y
    assert cum[-1] == pytest.approx(1.0, abs=1e-3) and np.all(np.diff(cum) >= -1e-6)


def test_spectrum_shows_mean_and_spread_per_dimension():
    from embgeo.analysis.datasets import make_anisotropic

    x = make_anisotropic(400, 24, n_rogue=2, random_state=0)
    d = Dashboard(x, background=False)
    d.tabs.selected_index = 2  # Spectrum
    bars = d.spectrum.data[2]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(bars.y, u.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(bars.error_y.array, u.std(axis=0), atol=1e-5)
    rogue = [r["dim"] for r in d.controller.isotropy().rogue_dimensions]
    assert rogue and all(bars.marker.color[j] == "#E45756" for j in rogue)
    assert f"{rogue[0]} (" in d.spectrum_note.value and "none flagged" not in d.spectrum_note.value


def test_hubness_tab_explains_each_number(clustered):
    from embgeo.analysis import HubnessReport

    d = Dashboard(clustered, background=False)
    d.tabs.selected_index = 4  # Hubness
    rep, page = d.controller.hubness(), d.hub_summary.value
    assert f"<td>antihubs</td><td><b>{rep.antihub_rate:.1%}</b></td>" in page  # a percentage, as on the card
    for field in ("skewness", "antihub_rate", "robin_hood", "hub_occupancy", "max_k_occurrence"):
        meaning, reference = HubnessReport.describe(field)
        assert html.escape(meaning) in page and html.escape(reference) in page


def test_numbers_that_mean_zero_say_so():
    from embgeo.widgets._html import format_change, format_number

    assert format_number(-4.215e-05) == "-4.2e-05 (\u2248 0)" and format_change(3e-4) == "+3.0e-04 (\u2248 0)"
    assert format_number(0.0) == "0" and format_number(0.001) == "0.001" and format_number(12345) == "12,345"


def test_spectrum_says_why_no_dimension_is_rogue_and_names_the_largest_shares():
    """One dimension can carry a large share of the cosine without being rogue by the rule (half of the
    cosine needs many dimensions); the tab said only 'none' beside a bar that stood out."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 400)) + 0.05  # a small mean in every one of 400 dimensions...
    x[:, 7] += 0.6  # ...and a larger one in dimension 7
    d = Dashboard(x.astype(np.float32), background=False)
    d.tabs.selected_index = 2  # Spectrum
    iso = d.controller.isotropy()
    assert iso.rogue_dimensions == [] and iso.top_dimensions[0]["dim"] == 7 and iso.top_dimensions[0]["share"] > 0.1
    assert "none flagged" in d.spectrum_note.value
    assert f"dimension 7 {iso.top_dimensions[0]['share']:.1%}" in d.spectrum_note.value


def test_intrinsic_dimension_draws_decimation_and_gride_scale_curves(clustered):
    d = Dashboard(clustered, background=False)
    d.tabs.selected_index = 3  # Intrinsic dimension
    rep = d.controller.intrinsic()
    decimation, gride = d.scale.data
    np.testing.assert_allclose(decimation.x, rep.scale_distance, rtol=1e-6)
    np.testing.assert_allclose(decimation.y, rep.scale_twonn, rtol=1e-6)
    np.testing.assert_allclose(gride.x, rep.gride_distance, rtol=1e-6)
    np.testing.assert_allclose(gride.y, rep.gride_dimension, rtol=1e-6)
    assert len(gride.y) >= 4 and gride.hovertext[0] == "ranks 1, 2"


def test_metric_change_recomputes_for_the_new_metric(clustered):
    d = Dashboard(clustered, background=False)
    d.metric.value = "euclidean"
    assert d.controller.is_cached("isotropy", "euclidean")


def test_k_is_selectable_and_every_tab_uses_it(clustered):
    from embgeo.analysis import hubness_report

    d = Dashboard(clustered, background=False)
    assert d.k_choice.value == 10 and 30 in d.k_choice.options and 100 in d.k_choice.options  # 300 points
    table = d.controller.shared_table()
    d.k_choice.value = 20
    assert d.controller.k == 20 and "k = 20 neighbours" in d.overview.value and d.error.value == ""
    assert np.shares_memory(d.controller.shared_table().indices, table.indices)  # k <= 32: the same table
    d.tabs.selected_index = 4  # Hubness
    assert d.controller.hubness().skewness == pytest.approx(hubness_report(clustered, k=20).skewness, rel=1e-9)
    small = Dashboard(clustered.vectors[:12], background=False)
    assert small.k_choice.options == (5, 10) and small.k_choice.value == 10


def test_the_report_exports_as_json_and_a_standalone_html_page(clustered):
    import base64
    import json
    import re

    from embgeo.analysis import geometry_report
    from embgeo.widgets._options import COMPARE_SAMPLE

    d = Dashboard(clustered, background=False)
    d.export_button.click()
    assert d.error.value == ""
    links = dict(re.findall(r"download='([^']+)' href='data:[^;]+;base64,([^']+)'", d.export_links.value))
    assert set(links) == {f"{clustered.name}.json", f"{clustered.name}.html"}
    shown = json.loads(base64.b64decode(links[f"{clustered.name}.json"]))
    direct = geometry_report(clustered, k=10, sample=COMPARE_SAMPLE, random_state=0).to_dict()
    assert shown["isotropy"]["mean_cosine"] == pytest.approx(direct["isotropy"]["mean_cosine"], rel=1e-9)
    assert shown["hubness"]["skewness"] == pytest.approx(direct["hubness"]["skewness"], rel=1e-9)
    page = base64.b64decode(links[f"{clustered.name}.html"]).decode()
    assert page.lstrip().lower().startswith("<!doctype html") and "Plotly" in page
    assert not re.search(r"<script[^>]*\bsrc=", page)  # plotly.js inline: opens offline
    d.k_choice.value = 20  # other settings: the old export is withdrawn
    assert d.export_links.value == ""


def test_large_sets_get_a_density_layer(monkeypatch, clustered):
    import embgeo.widgets._options as dmod

    monkeypatch.setattr(dmod, "DENSITY_THRESHOLD", 100)
    monkeypatch.setattr(dmod, "POINT_SAMPLE", 50)
    d = Dashboard(clustered, background=False)
    d.tabs.selected_index = 1
    density, points = d.figure.data
    assert isinstance(density, go.Heatmap) and len(points.x) == 50
    # binned in the kernel: the browser gets a grid of counts of every point, not the points
    assert np.asarray(density.z).shape == (dmod.DENSITY_BINS, dmod.DENSITY_BINS)
    assert np.expm1(np.asarray(density.z, dtype=np.float64)).sum() == pytest.approx(clustered.n, rel=1e-4)
    assert "density" in d.trust.value
    d.figure.data[1]._dispatch_on_click(Points(point_inds=[5], xs=[0], ys=[0], trace_name="p", trace_index=1), None)
    assert d.controller.selected_point == int(d._shown[5])


def test_large_sets_use_the_approximate_table_and_show_its_recall(monkeypatch, clustered):
    import embgeo.widgets._controller as cmod

    monkeypatch.setattr(cmod, "APPROXIMATE_ABOVE", 100)
    fresh = EmbeddingSet(clustered.vectors, clustered.metadata, name="clustered")  # no cached tables yet
    d = Dashboard(fresh, background=False)
    c = d.controller
    assert not c.exact and d.exact_box in d.panels["Overview"].children
    table = c.data.cached_neighbors(c.neighbor_table_width(), metric="cosine", exact=False)
    assert table is not None and not table.exact  # the Overview searched the approximate table only
    assert c.data.cached_neighbors(1, metric="cosine") is None  # ... and no exact one
    assert f"recall@{table.k} {table.recall:.3f}" in d.overview.value
    assert c.hubness().exact is False and c.hubness().recall == table.recall
    np.testing.assert_array_equal(c.neighbors().indices, table.head(c.k).indices)
    d.exact_box.value = True  # on request, the exact table
    assert c.exact and c.data.cached_neighbors(c.neighbor_table_width(), metric="cosine") is not None
    assert "Neighbours: exact" in d.overview.value and c.hubness().exact


def test_app_rejects_bad_uploads_with_a_message(tmp_path):
    app = DashboardApp(SYNTHETIC, background=False)
    assert app.message.value == "" and app.dashboard.controller.data.n == 3000
    app.open_upload("notes.txt", b"hello")
    assert "unsupported file type .txt" in app.message.value
    app.open_upload("broken.npy", b"not a numpy file")
    assert "broken.npy" in app.message.value and "Traceback" not in app.message.value
    assert app.message.value.count("broken.npy") == 1  # named once, not "broken.npy: broken.npy: ..."
    assert "upload.npy" not in app.message.value and "/tmp" not in app.message.value  # no server paths
    app.open_upload("big.csv", b"0" * (MAX_UPLOAD_BYTES + 1))
    assert "limit is 50 MB" in app.message.value


def test_app_opens_a_good_upload(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    s = load_upload("v.npy", (tmp_path / "v.npy").read_bytes())
    np.testing.assert_array_equal(s.vectors, x)
    csv = "text,a,b,c\n" + "\n".join(f"w{i},{i},{i % 3},{1 + i % 5}" for i in range(20))
    s = load_upload("t.csv", csv.encode())
    assert s.dim == 3 and s.texts[:2] == ["w0", "w1"]


def test_the_picker_goes_blank_when_another_set_opens_so_a_sample_opens_again(tmp_path):
    """After an upload (or a database, or a layer opened in place) the picker no longer names the set
    shown; choosing the sample it said before opens that sample again instead of doing nothing."""
    app = DashboardApp(SYNTHETIC, background=False)
    np.save(tmp_path / "v.npy", np.random.default_rng(0).normal(size=(60, 6)).astype(np.float32))
    app.open_upload("v.npy", (tmp_path / "v.npy").read_bytes())
    assert app.dashboard.controller.data.n == 60 and app.picker.value is None and app.message.value == ""
    app.picker.value = SYNTHETIC
    assert app.dashboard.controller.data.n == 3000 and app.picker.value == SYNTHETIC
    # a set opened inside the dashboard (the Layers tab's picker does this) blanks it too
    app.dashboard.open_set(np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32))
    assert app.dashboard.controller.data.n == 50 and app.picker.value is None
    app.open_upload("notes.txt", b"hello")  # a failed upload leaves the picker and the set as they were
    assert app.picker.value is None and app.dashboard.controller.data.n == 50


@pytest.mark.slow
def test_umap_view_reuses_the_shared_table_and_says_when_it_changes_metric(clustered):
    d = Dashboard(clustered.subset(range(300)), background=False, metric="dot")
    d.tabs.selected_index = 1
    d.method.value = "umap"
    assert d.error.value == ""
    assert isinstance(F.points_trace(d.figure), go.Scattergl) and len(F.points_trace(d.figure).x) == 300
    assert "this map uses cosine" in d.trust.value
    # UMAP's graph came from the set's cached exact table (searched once, wide enough for every panel)
    assert d.controller.neighbor_table_width() == 32
    assert d.controller.data.cached_neighbors(32, metric="cosine") is not None
