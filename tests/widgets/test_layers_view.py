"""The dashboard's Layers tab, headless: 40 texts through the bundled MiniLM, three layers.

The model loads once per process (the analysis keeps it); the module's dashboard is run once and its
result reused by the tests that only read it.
"""

import html

import numpy as np
import plotly.graph_objects as go
import pytest

from embgeo.analysis import EmbeddingSet, datasets, layer_geometry, similarity_matrix
from embgeo.widgets import Dashboard
from embgeo.widgets._options import TABS

pytest.importorskip("transformers")
if "sentences" not in datasets.list_samples(installed=True):
    pytest.skip("the bundled sentences sample is not installed", allow_module_level=True)

N_TEXTS, LAYERS = 40, "0, 3, 6"


def _texts_set() -> EmbeddingSet:
    """A small set with a text and a label column: the texts the tab reads from 'this set'."""
    s = datasets.load_sample("sentences")
    rows = np.arange(0, s.n, s.n // 60)[:60]
    return EmbeddingSet(s.vectors[rows], s.metadata.iloc[rows].reset_index(drop=True), name="sentences subset")


def _dashboard(source: str = "sample") -> Dashboard:
    d = Dashboard(_texts_set(), background=False)
    d.tabs.selected_index = TABS.index("Layers")
    d.layers_source.value = source
    d.layers_cap.value = N_TEXTS
    d.layers_choice.value = LAYERS
    return d


@pytest.fixture(scope="module")
def ran():
    d = _dashboard()
    assert "press Run" in d.layers_page.value
    d.layers_run.click()
    assert d.error.value == "", d.error.value
    yield d
    d.close()


def test_the_curves_are_the_layer_geometry_of_the_chosen_texts(ran):
    g = ran.layer_geometry
    assert list(g.layers) == [0, 3, 6] and g.n == N_TEXTS and g.dim == 384 and g.label_agreement is not None
    # the same seeded sample of the bundled sentences, computed directly
    s = datasets.load_sample("sentences")
    rows = np.sort(np.random.default_rng(0).choice(s.n, size=N_TEXTS, replace=False))
    direct = layer_geometry("all-MiniLM-L6-v2", [s.texts[i] for i in rows], layers=[0, 3, 6], k=10,
                            labels=s.metadata["label"].astype(str).to_numpy()[rows], progress=False)
    for name, values in direct.curves().items():
        np.testing.assert_allclose(g.curves()[name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    curves = ran._layers_boxes["curves"].children[0]
    assert len(curves.data) == 6 and all(isinstance(t, go.Scatter) for t in curves.data)
    for trace, name in zip(curves.data, ("mean_cosine", "isoscore", "effective_rank", "twonn",
                                         "hubness_skewness", "knn_overlap_last")):
        assert list(trace.x) == [0, 3, 6] and trace.y.dtype == np.float32
        np.testing.assert_allclose(trace.y, direct.curves()[name], rtol=1e-4, err_msg=name)
    assert curves.data[5].y[-1] == pytest.approx(1.0)  # the last layer's overlap with itself
    page = ran.layers_page.value
    assert f"{N_TEXTS} of the 5,458 texts of sentences" in page and "<table" in page


def test_the_heat_map_is_the_linear_cka_of_the_layers(ran):
    g, heat = ran.layer_geometry, ran._layers_boxes["cka"].children[0]
    direct = similarity_matrix(g.layer_sets(), statistic="linear_cka")
    assert isinstance(heat.data[0], go.Heatmap) and list(heat.data[0].x) == ["layer 0", "layer 3", "layer 6"]
    z = np.asarray(heat.data[0].z, dtype=np.float64)
    np.testing.assert_allclose(z, direct.matrix, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.diag(z), 1.0, atol=1e-6)
    # the linear CKA of two layers from its definition on the centred rows (Kornblith et al., 2019)
    x, y = (np.asarray(g.layer_set(layer).vectors, dtype=np.float64) for layer in (0, 6))
    x, y = x - x.mean(0), y - y.mean(0)
    cka = np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    assert z[0, 2] == pytest.approx(cka, rel=1e-5)


def test_the_picker_opens_a_layer_in_every_tab(ran):
    assert ran.layers_pick.options == (("layer 0", 0), ("layer 3", 3), ("layer 6", 6))
    old_controller = ran.controller
    ran.layers_pick.value = 3
    ran.layers_open.click()
    assert ran.error.value == "", ran.error.value
    data = ran.controller.data
    assert ran.controller is not old_controller and data.name.endswith("layer 3") and data.n == N_TEXTS
    np.testing.assert_array_equal(data.vectors, ran.layer_geometry.layer_set(3).vectors)
    assert "layer 3" in ran.title.value and "Every tab now shows" in ran.layers_page.value
    # the layer's curves stay in the Layers tab; the other tabs compute on the layer
    assert len(ran._layers_boxes["curves"].children[0].data) == 6
    ran.tabs.selected_index = TABS.index("Hubness")
    assert ran.error.value == "" and ran.controller.is_cached("hubness", "cosine", ran.controller.k, True)
    direct = ran.layer_geometry.hubness_skewness[1]
    assert ran.controller.hubness().skewness == pytest.approx(direct, rel=1e-6)  # k = 10 in both
    # the last layer is offered in Compare; its similarity block is computed on the same items
    ran.tabs.selected_index = TABS.index("Compare")
    assert ran.compare_choice.value == ("given",) and ran.controller.compare_with.name.endswith("layer 6")
    ran.compare_run.click()
    assert ran.error.value == "", ran.error.value
    assert "Representation similarity" in ran.compare_page.value
    cka = ran.layer_cka.matrix[1, 2]
    assert ran.compare_similarity.linear_cka == pytest.approx(cka, rel=1e-5)
    # and back to the set the dashboard opened with
    assert ran.layers_back.layout.display is None
    ran.layers_back.click()
    assert ran.controller.data.name == "sentences subset" and ran.controller.compare_with is None
    assert ran.layers_back.layout.display == "none" and "Every tab now shows" not in ran.layers_page.value


def test_open_set_closes_the_old_tabs_widgets():
    d = _dashboard()
    owned = list(d._owned)
    d.open_set(EmbeddingSet(np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32), name="other"))
    closed = [w for w in owned if w.comm is None]
    kept = [w for w in owned if w.comm is not None]
    assert closed and d.layers_run in kept and d.tabs in kept and d.panels["Layers"] in kept
    assert d.overview.comm is not None and "other" in d.title.value and d.controller.data.n == 50
    assert d._layers_widgets and all(w.comm is not None for w in d._layers_widgets)
    assert not d.layer_geometry and "this set's text column" not in str(d.layers_source.options)
    d.close()
    assert all(w.comm is None for w in owned)


def test_cancel_stops_the_run():
    d = _dashboard()
    d.open_set(_texts_set())  # the Cancel button stops the current controller's work, not the first one's
    c = d.controller
    c.observe(lambda ch: d.cancel_button.click() if ch.new > 10 else None, "progress")
    d.layers_run.click()
    assert c.status.endswith("cancelled") and c.error == "" and not c.busy
    assert d.layer_geometry is None and "could not be computed" in d.layers_page.value
    assert d.layers_charts.layout.display == "none"
    d.close()


@pytest.mark.parametrize("layers, message", [("0, 99", "99"), ("zero", "layers must be 'all' or integers")])
def test_errors_show_one_line(layers, message):
    d = _dashboard(source="own")
    d.layers_choice.value = layers
    d.layers_run.click()
    shown = html.unescape(d.error.value)
    assert shown.startswith("<div class='embgeo-error'>Input problem:") and message in shown, shown
    assert "\n" not in shown and "Traceback" not in shown
    assert "could not be computed" in d.layers_page.value and d.layer_geometry is None
    d.close()


def test_a_set_without_texts_offers_the_bundled_sentences_only():
    d = Dashboard(np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32), background=False)
    d.tabs.selected_index = TABS.index("Layers")
    assert [key for _, key in d.layers_source.options] == ["sample"]
    d.close()
