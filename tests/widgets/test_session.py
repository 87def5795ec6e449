"""A long dashboard session stays bounded; progress moves during searches; work can be cancelled."""

from __future__ import annotations

import gc
import io
import tracemalloc

import numpy as np
import pytest
from ipywidgets.widgets import widget as ipywidget

from embgeo.analysis import EmbeddingSet, datasets
from embgeo.widgets import Dashboard, DashboardApp, DashboardController
from embgeo.widgets._cache import ByteBudgetCache, approx_nbytes
from embgeo.widgets.app import SYNTHETIC


def _npy_bytes(seed: int, n: int = 240, d: int = 12) -> bytes:
    buf = io.BytesIO()
    np.save(buf, datasets.make_anisotropic(n, d, random_state=seed))
    return buf.getvalue()


def _live_widgets() -> int:
    gc.collect()
    return len(ipywidget._instances)


#: Allocations of other threads that a test process may hold (a Dask client's monitor, tornado and
#: asyncio loops of servers other tests started): not the dashboard's, so not counted.
OTHER_THREADS = ("*/distributed/*", "*/tornado/*", "*/psutil/*", "*/asyncio/*", "*/zmq/*", "*/threading.py")


def _own_traced_bytes() -> int:
    """Bytes traced now, less those allocated in the other threads' libraries (:data:`OTHER_THREADS`)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pattern) for pattern in (*OTHER_THREADS, tracemalloc.__file__)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.slow
def test_a_long_session_keeps_a_bounded_number_of_widgets_and_bounded_memory():
    """Switch data, metric and transform 24 times (eight cycles of the three sets), as a workshop
    participant might in half an hour. 50 switches took three minutes of the suite; a leaked dashboard
    per switch already shows here as about ten times the memory bound (see below)."""
    app = DashboardApp(SYNTHETIC, background=False)
    uploads = [_npy_bytes(seed) for seed in range(3)]
    counts, memory = [], []
    tracemalloc.start()
    try:
        for i in range(24):
            app.open_upload(f"set{i % 3}.npy", uploads[i % 3])
            d = app.dashboard
            assert app.message.value == "" and d.error.value == "", (app.message.value, d.error.value)
            d.metric.value = ("euclidean", "cosine", "dot")[i % 3]
            d.tabs.selected_index = 5  # Transforms
            d.transform.value = ("center", "abtt", "zca")[i % 3]
            d.transform_apply.click()
            assert d.error.value == "", d.error.value
            d.tabs.selected_index = 1  # Projection: the map is drawn into the dashboard's one figure
            counts.append(_live_widgets())
            if i in (9, 23):
                memory.append(_own_traced_bytes())
    finally:
        tracemalloc.stop()
    # the old dashboards were closed: the live widgets depend only on which transform is shown (its
    # parameter controls), the same at the same step of every cycle, never growing with the session
    assert all(counts[i] == counts[i + 3] for i in range(3, len(counts) - 3)), counts
    # and memory does not grow with the session: measured flat to 0.3 MB over 30 iterations, where a
    # dashboard kept alive per iteration (anywidget pins every plain FigureWidget) cost 1.4 MB each,
    # so such a leak over these 14 iterations would be about 20 MB
    assert memory[-1] - memory[0] < 2 * 2**20, [m // 2**10 for m in memory]


def test_one_dashboard_reuses_its_figures_and_keeps_the_cache_within_budget():
    x = datasets.make_anisotropic(300, 16, random_state=1)
    d = Dashboard(EmbeddingSet(x, name="s"), background=False, cache_bytes=400_000)
    d.tabs.selected_index = 1
    figure = d.figure
    d.tabs.selected_index = 5
    before = None
    for i in range(12):
        d.metric.value = ("cosine", "euclidean")[i % 2]
        d.transform.value = ("center", "abtt", "zca")[i % 3]
        d.transform_apply.click()
        assert d.error.value == ""
        d.dims.value = (2, 3)[i % 2]
        if i == 2:  # every transform's controls exist by now
            before = _live_widgets()
        assert d.figure is figure  # redrawn in place, never replaced
        c = d.controller
        assert c.cache.nbytes <= c.cache.budget
    assert _live_widgets() <= before + 2
    d.close()
    assert figure.comm is None  # closed with the dashboard


def test_cache_drops_the_least_recently_used_and_never_counts_the_data():
    data = np.zeros((100, 10), np.float32)  # 4,000 bytes, excluded
    cache = ByteBudgetCache(10_000, exclude=[data])
    cache.get("a", lambda: np.zeros(1000, np.float32))  # 4,000
    cache.get("b", lambda: {"x": np.zeros(1000, np.float32), "data": data})  # 4,000 (data not counted)
    assert cache.nbytes == 8_000
    cache.get("a", lambda: pytest.fail("cached"))  # a is now the most recent
    cache.get("c", lambda: np.zeros(1000, np.float32))  # over budget: b goes
    assert cache.keys() == ["a", "c"] and cache.nbytes == 8_000
    big = cache.get("d", lambda: np.zeros(5000, np.float32))  # alone over the budget: returned, not kept
    assert big.shape == (5000,) and "d" not in cache


def test_approx_nbytes_counts_a_sets_vectors_and_tables_once():
    es = EmbeddingSet(np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32))
    table = es.neighbors(5)
    expected = es.vectors.nbytes + table.indices.nbytes + table.distances.nbytes
    assert approx_nbytes(es) == expected
    assert approx_nbytes([es, es, {"again": es.vectors[:10]}]) == expected  # views share the buffer


def test_progress_moves_tile_by_tile_during_the_neighbour_search(monkeypatch):
    from embgeo.analysis.neighbors import exact

    monkeypatch.setattr(exact, "SYMMETRIC_BLOCK_ROWS", 128)  # 2,000 points: 16 blocks, 136 tiles
    ctl = DashboardController(datasets.make_anisotropic(2000, 16, random_state=0))
    seen = []
    ctl.observe(lambda ch: seen.append(ch.new), "progress")
    ctl.submit("overview", ctl.cards)
    assert ctl.error == "" and ctl.progress == 100
    during = [v for v in seen if 10 <= v <= 45]
    assert len(set(during)) >= 10, seen  # the bar moved many times inside the search
    assert seen == sorted(seen) or seen[-1] == 100


def test_cancel_stops_the_search_and_caches_nothing(monkeypatch):
    from embgeo.analysis.neighbors import exact

    monkeypatch.setattr(exact, "SYMMETRIC_BLOCK_ROWS", 128)
    ctl = DashboardController(datasets.make_anisotropic(2000, 16, random_state=0))
    ctl.observe(lambda ch: ctl.cancel() if ch.new > 20 else None, "progress")
    ctl.submit("overview", ctl.cards)
    assert ctl.status == "overview: cancelled" and ctl.error == "" and not ctl.busy
    assert ctl.data.cached_tables() == [] and not ctl.is_cached("isotropy", "cosine")


def test_a_job_started_while_another_runs_says_it_waits_and_then_runs():
    import threading
    import time

    x = datasets.make_anisotropic(200, 8, random_state=0)
    d = Dashboard(x, background=False)
    c = d.controller
    c.background = True
    release, started, order = threading.Event(), threading.Event(), []

    def slow():
        started.set()
        release.wait(10)
        order.append("slow")

    c.submit("index sweep", slow)
    started.wait(10)
    c.submit("hubness", lambda: order.append("second"))
    deadline = time.monotonic() + 10
    while c.queued != ("hubness",) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c.queued == ("hubness",) and "waiting for the job above to finish: hubness" in d.queued.value
    release.set()
    while (c.queued or c.busy or len(order) < 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["slow", "second"] and c.queued == () and d.queued.value == ""


def test_a_running_job_sends_heartbeats_so_the_server_does_not_cull_its_kernel(monkeypatch):
    """A task whose steps are silent still sends a message every HEARTBEAT_S (the server's culler counts
    messages as activity), and none once it has ended."""
    import threading
    import time

    from embgeo.widgets import _tasks

    monkeypatch.setattr(_tasks, "HEARTBEAT_S", 0.05)
    d = Dashboard(datasets.make_anisotropic(200, 8, random_state=0), background=False)
    c = d.controller
    c.background = True
    sent = []
    monkeypatch.setattr(d.progress, "send_state", lambda key=None: sent.append(key))
    release, ended = threading.Event(), threading.Event()
    c.submit("a silent step", lambda: release.wait(10), lambda _: ended.set())
    deadline = time.monotonic() + 10
    while len(sent) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(sent) >= 5 and set(sent) == {"value"} and c.busy
    release.set()
    assert ended.wait(10)
    time.sleep(0.2)  # a beat already waiting may land once more
    after = len(sent)
    time.sleep(0.3)
    assert len(sent) == after and c.heartbeat >= 4  # (the bar's own value changes send too)


def test_the_app_opens_the_sample_it_is_asked_for_or_says_it_has_none_by_that_name(monkeypatch):
    """EMBGEO_APP_SAMPLE=synthetic (the served app's light set in tests) opens the synthetic cloud; an
    unknown name is said on the page, where it used to open the words sample silently."""
    from embgeo.widgets import app as app_module

    monkeypatch.setattr(app_module, "sample_choices", lambda: [SYNTHETIC])  # no bundled sample: fast
    light = DashboardApp("synthetic", background=False)
    assert light.picker.value == SYNTHETIC and light.message.value == ""
    assert (light.dashboard.controller.data.n, light.dashboard.controller.data.dim) == (3000, 128)
    unknown = DashboardApp("wrods", background=False)
    assert unknown.picker.value == SYNTHETIC
    assert "There is no sample 'wrods' here" in unknown.message.value and SYNTHETIC in unknown.message.value


def test_a_page_that_has_built_its_widgets_gets_every_state_again(monkeypatch):
    """Updates a kernel sends while a page is still building its widget models are dropped by the page
    (see widgets/_page_sync.py); once built, the page's 'rendered' makes the kernel re-send the current
    state of every widget of the app -- figures with their current data, which plotly's own state lacks."""
    import ipywidgets as W

    app = DashboardApp(SYNTHETIC, background=False)
    d = app.dashboard
    d.tabs.selected_index = 2  # Spectrum: draws into a FigureWidget
    figure = d.spectrum
    assert len(figure.data) > 0 and figure._widget_data == []  # plotly keeps the empty figure it was made as
    sent = []
    monkeypatch.setattr(W.Widget, "send_state", lambda self, key=None: sent.append((self, key)))

    d._page_sync._handle_custom_msg({"event": "something else"}, [])
    assert sent == []
    d._page_sync._handle_custom_msg({"event": "rendered"}, [])
    whole = [id(widget) for widget, key in sent if key is None]
    full = set(whole)
    assert len(full) == len(whole)  # each once (a figure's refreshed data and layout also go out as changes)
    for widget in (app, app.picker, app.message, d, d.status, d.progress, d.error, d.cancel_button.layout,
                   d.tabs, d.panels["Overview"].children[0], d.panels["Spectrum"], figure):
        assert id(widget) in full
    assert [t["type"] for t in figure._widget_data] == [t.plotly_name for t in figure.data]
    assert figure._widget_layout == figure._layout_obj._props

    closed = d.status
    closed.close()
    sent.clear()
    d._page_sync._handle_custom_msg({"event": "rendered"}, [])
    assert sent and id(closed) not in {id(widget) for widget, _ in sent}


def test_figures_are_fitted_to_the_width_the_page_reports_and_stay_fitted_when_redrawn():
    """plotly's FigureWidget does not follow its container: the page sync reports the page's width and
    each figure takes its share of the panel (a 1150 px spectrum in a 1000 px page was clipped)."""
    from embgeo.widgets import dashboard as D

    d = Dashboard(datasets.make_anisotropic(400, 16, random_state=0), background=False)
    d.tabs.selected_index = 2  # Spectrum, drawn before the page said its width: the builder's width
    assert d.spectrum.layout.width == 1150
    d._page_sync._handle_custom_msg({"event": "width", "width": 1000}, [])
    panel = 1000 - D._PANEL_PAD_PX
    assert d.page_width == 1000 and d.spectrum.layout.width == panel
    d.tabs.selected_index = 3  # Intrinsic dimension: two figures side by side, each fitted as it is made
    assert d.lid_histogram.layout.width == d.scale.layout.width == panel // 2
    d._page_sync._handle_custom_msg({"event": "width", "width": 1400}, [])
    assert d.spectrum.layout.width == 1400 - D._PANEL_PAD_PX and d.scale.layout.width == (1400 - D._PANEL_PAD_PX) // 2
    d.k_choice.value = 5  # every tab computes again: a redraw keeps the fitted width
    d.tabs.selected_index = 2
    assert d.spectrum.layout.width == 1400 - D._PANEL_PAD_PX
    for bad in ({"event": "width", "width": 0}, {"event": "width", "width": "wide"}, {"event": "width"}):
        d._page_sync._handle_custom_msg(bad, [])
    assert d.page_width == 1400
    d._page_sync._handle_custom_msg({"event": "width", "width": 200}, [])  # never narrower than the floor
    assert d.spectrum.layout.width == D._MIN_FIGURE_PX
    old = d.spectrum
    d.open_set(datasets.make_anisotropic(300, 16, random_state=1))  # the old tabs' figures are let go
    assert d.spectrum is not old and [slot[0] for slot in d._figure_slots.values()] == [d.spectrum]
    assert d.spectrum.layout.width == D._MIN_FIGURE_PX  # drawn at the width the page last said
