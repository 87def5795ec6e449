"""The embgeo dashboard: an ipywidgets container of tabbed panels over one embedding set.

The view is thin: every number comes from :class:`~._controller.DashboardController` (cached per
setting), and every picture from :mod:`._figures`. Each tab is a view module (``_summary_views``,
``_projection_view``, ``_transforms_view``, ``_index_view``, ``_compare_view``, ``_shift_view``,
``_layers_view``) mixed into
:class:`Dashboard`. Panels are computed the first time their tab is opened; long work runs in a worker
thread with a progress bar that moves during neighbour searches and a Cancel button, and errors are
shown as a message in the page.

Widgets are built once and updated in place (HTML values, FigureWidgets redrawn inside
``batch_update``), and the dashboard records every widget it creates, so :meth:`Dashboard.close`
releases all of them: switching data in the app, or a long session, leaves no widgets behind.
"""

from __future__ import annotations

import html

import ipywidgets as W

from embgeo.analysis import METRICS

from . import _figures as F
from ._compare_view import CompareView
from ._controller import DashboardController
from ._html import italic, page_css
from ._index_view import IndexView
from ._layers_view import LayersView
from ._options import TABS, k_options
from ._page_sync import PageSync
from ._projection_view import ProjectionView
from ._retrieval_view import RetrievalView
from ._shift_view import ShiftView
from ._summary_views import SummaryViews
from ._transforms_view import TransformsView

#: A tab's contents are this many pixels narrower than the dashboard: 36 of the tab's borders and padding
#: (measured in Chromium: 970 -> 934), and a few to spare.
_PANEL_PAD_PX = 44
#: No figure is fitted narrower than this.
_MIN_FIGURE_PX = 320

#: Tabs whose panel shows a computed result as soon as it is opened; the others wait for a button.
_COMPUTED_TABS = ("Overview", "Spectrum", "Intrinsic dimension", "Hubness")


class Dashboard(SummaryViews, ProjectionView, TransformsView, IndexView, RetrievalView, CompareView, ShiftView,
                LayersView, W.VBox):
    """Tabbed dashboard of an embedding set's geometry.

    Parameters
    ----------
    data : EmbeddingSet, array-like of shape (n, d), or path (read by ``embgeo.analysis.io.load``)
    metadata : pandas.DataFrame, optional
        One row per vector; ``text`` is shown on hover and in neighbour lists; any column can colour
        the projection.
    compare_with : EmbeddingSet, array-like of shape (m, d'), or path, optional
        A second set (another model's vectors of the same items, or a post-processed copy) that the
        Compare tab offers first.
    background : bool
        Compute in a worker thread so the page stays responsive (default). ``False`` computes inline,
        which tests and scripts use.
    metric : {"cosine", "euclidean", "dot"}
    cache_bytes : int, optional
        Memory the cached results and transformed copies may hold (see :class:`DashboardController`).

    Examples
    --------
    >>> from embgeo.widgets import Dashboard
    >>> Dashboard(vectors)  # doctest: +SKIP
    """

    def __init__(self, data, metadata=None, compare_with=None, *, background: bool = True, metric: str = "cosine",
                 cache_bytes: int | None = None):
        self._owned: list[W.Widget] = []
        #: Called with the new set after :meth:`open_set` (the app blanks its dataset picker).
        self.on_open_set = None
        own = self._own
        self.controller = c = DashboardController(data, metadata, background=background, metric=metric,
                                                  compare_with=compare_with, cache_bytes=cache_bytes)
        self.progress = own(W.IntProgress(value=0, min=0, max=100, layout=W.Layout(width="200px")))
        self.status = own(W.Label(""))
        self.cancel_button = own(W.Button(description="Cancel", icon="stop", layout=W.Layout(width="90px"),
                                          tooltip="Stop the running computation at its next step"))
        self.cancel_button.layout.display = "none"
        self.cancel_button.on_click(lambda _: self.controller.cancel())  # the current one (see open_set)
        self.error = own(W.HTML(""))
        #: The tree the page is re-sent once it has built it (see _page_sync); the app makes it its own.
        self.page_root: W.Widget = self
        #: The page's width in pixels, once the page has said it (see fit_figures); None before.
        self.page_width: int | None = None
        self._figure_slots: dict[int, tuple] = {}  # id(figure) -> (figure, share, beside_px)
        self._page_sync = own(PageSync(lambda: self.page_root, on_width=self.fit_figures))
        self._observers = [(self._on_progress, "progress"), (self._on_status, "status"), (self._on_error, "error"),
                           (self._on_busy, "busy"), (self._on_queued, "queued"), (self._on_heartbeat, "heartbeat")]
        self.queued = own(W.HTML(""))
        for handler, name in self._observers:
            c.observe(handler, name)
        self.metric = own(W.Dropdown(options=list(METRICS), value=metric, description="metric",
                                     layout=W.Layout(width="200px")))
        self.metric.observe(self._on_metric, "value")
        self.k_choice = own(W.Dropdown(options=k_options(c.data.n, c.k), value=c.k, description="k",
                                       tooltip="neighbours per point of every k-NN statistic",
                                       layout=W.Layout(width="110px"), style={"description_width": "20px"}))
        self.k_choice.observe(self._on_k, "value")
        self.title = title = own(W.HTML(_title(c.data)))
        self.panels = {name: own(W.VBox()) for name in TABS}
        self._messages = {name: own(W.HTML(italic("Open this tab to compute it."))) for name in TABS}
        self._result_parts: dict[str, tuple[W.HTML, list[W.Widget]]] = {}
        self._chrome = list(self._owned)  # what open_set keeps besides the Layers tab
        self._build_views()
        self._build_layers_view()
        self.tabs = own(W.Tab(children=[self.panels[name] for name in TABS]))
        for i, name in enumerate(TABS):
            self.tabs.set_title(i, name)
        self.tabs.observe(lambda ch: self._render(TABS[ch.new]), "selected_index")
        self._rendered: set[str] = set()
        controls = own(W.HBox([self.metric, self.k_choice, self.progress, self.cancel_button, self.status,
                               self.queued, self._page_sync]))
        super().__init__([title, controls, self.error, self.tabs])
        self.add_class("embgeo-page")  # the element whose width the page sync reports
        self._render("Overview")

    # ------------------------------------------------------------------------------ plumbing
    def _build_views(self) -> None:
        """Build every tab's controls and result areas over the controller's set (again in :meth:`open_set`)."""
        self._build_summary_views()
        self._build_projection_view()
        self._build_transforms_view()
        self._build_index_view()
        self._build_retrieval_view()
        self._build_compare_view()
        self._build_shift_view()

    def open_set(self, data, *, compare_with=...) -> None:
        """Show ``data`` in every tab, as the app does for an upload, without leaving the page.

        A new controller over ``data`` (the metric, the cache budget, background mode and k, where it
        fits, kept) replaces the old one with its cached results; every tab but Layers is rebuilt and
        computed again when opened, and the old tabs' widgets are closed. ``compare_with`` becomes the
        Compare tab's given set (None: none; default: the one given before). The Layers tab's picker uses this.
        """
        old = self.controller
        new = DashboardController(data, background=old.background, metric=old.metric, cache_bytes=old.cache.budget,
                                  compare_with=old.compare_with if compare_with is ... else compare_with)
        new.k = min(old.k, new.data.n - 1)
        for handler, name in self._observers:
            old.unobserve(handler, name)
            new.observe(handler, name)
        keep = {id(w) for w in (*self._chrome, *self._layers_widgets, *self.children)}
        stale = [w for w in self._owned if id(w) not in keep]
        self._owned = [w for w in self._owned if id(w) in keep]
        self.controller = new
        self._result_parts = {tab: parts for tab, parts in self._result_parts.items() if tab == "Layers"}
        self._build_views()
        for widget in stale:
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
                if isinstance(part, W.Widget):
                    part.close()
            widget.close()
        self._figure_slots = {key: slot for key, slot in self._figure_slots.items() if slot[0].comm is not None}
        self.title.value = _title(new.data)
        self.k_choice.unobserve(self._on_k, "value")
        self.k_choice.options, self.k_choice.value = k_options(new.data.n, new.k), new.k
        self.k_choice.observe(self._on_k, "value")
        for message in self._messages.values():
            message.value = italic("Open this tab to compute it.")
        self._rendered.clear()
        self._render(TABS[self.tabs.selected_index or 0])
        if self.on_open_set is not None:
            self.on_open_set(new.data)

    def _own(self, widget: W.Widget) -> W.Widget:
        """Record a widget this dashboard created, so that :meth:`close` releases it."""
        self._owned.append(widget)
        return widget

    def _figure_in(self, box: W.Box, *, share: float | None = None, beside_px: int = 0, **layout):
        """The FigureWidget inside ``box``, created (and kept) the first time a panel draws into it.

        Creating the figures lazily keeps the first page light: a tab never opened costs no plot.
        ``share`` (of a panel's width) less ``beside_px`` (what shares its row) sizes the figure to the
        page once the page has said how wide it is (:meth:`fit_figures`); without it the figure keeps
        the width its builder gives.
        """
        if not box.children:
            figure = self._own(F.new_widget(**layout))
            if share is not None:
                self._figure_slots[id(figure)] = (figure, share, beside_px)
                box.layout.flex = "0 0 auto"  # the slot keeps its figure's width; what shares the row gives
                if self.page_width:
                    F.fit_width(figure, self._slot_width(share, beside_px))
            box.children = [figure]
        return box.children[0]

    def _slot_width(self, share: float, beside_px: int) -> int:
        return max(_MIN_FIGURE_PX, int(share * (self.page_width - _PANEL_PAD_PX)) - beside_px)

    def fit_figures(self, page_width: int) -> None:
        """Size every figure to a page ``page_width`` pixels wide (the page sync calls this when the page
        is shown and when its width changes): plotly's FigureWidget does not follow its container, and
        a figure wider than its panel is clipped."""
        self.page_width = int(page_width)
        for key, (figure, share, beside_px) in list(self._figure_slots.items()):
            if figure.comm is None:  # closed with a replaced set's tabs
                del self._figure_slots[key]
                continue
            F.fit_width(figure, self._slot_width(share, beside_px))

    def close(self) -> None:
        """Close every widget of the dashboard (figures included) and stop observing the controller."""
        for handler, name in self._observers:  # emptied here: close() runs again from __del__
            self.controller.unobserve(handler, name)
        self._observers = []
        for widget in self._owned + [self]:
            for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
                if isinstance(part, W.Widget):  # each widget's Layout and Style are widgets of their own
                    part.close()
        for widget in self._owned:
            widget.close()
        self._owned.clear()
        super().close()

    def _on_progress(self, change) -> None:
        self.progress.value = change.new

    def _on_status(self, change) -> None:
        self.status.value = change.new

    def _on_queued(self, change) -> None:
        """A tab opened (or a button pressed) while another job runs says that it waits, and for what."""
        waiting = change.new
        self.queued.value = ("" if not waiting else
                             f"<span class='embgeo-note'>waiting for the job above to finish: "
                             f"{html.escape(', '.join(waiting))} (Cancel stops the running one)</span>")

    def _on_heartbeat(self, change) -> None:
        # one small comm message (the bar's value, unchanged): the server counts it as the kernel's activity
        self.progress.send_state("value")

    def _on_busy(self, change) -> None:
        self.cancel_button.layout.display = None if change.new else "none"

    def _on_error(self, change) -> None:
        self.error.value = f"<div class='embgeo-error'>{change.new}</div>" if change.new else ""

    def _on_metric(self, change) -> None:
        self.controller.metric = change.new
        self._rendered.clear()
        self._render(TABS[self.tabs.selected_index or 0])

    def _on_k(self, change) -> None:
        """A new k: every tab computes again when opened (results are cached per k; the shared table is
        searched again only for k above its width, :meth:`DashboardController.neighbor_table_width`)."""
        if change.new is None or change.new == self.controller.k:
            return
        self.controller.k = int(change.new)
        self._rendered.clear()
        self._render(TABS[self.tabs.selected_index or 0])

    def _render(self, name: str) -> None:
        if name in self._rendered:
            return
        self._rendered.add(name)
        if name in _COMPUTED_TABS:
            self._render_summary(name)
        elif name == "Projection":
            self._compute_projection()
        elif name == "Transforms":
            self._layout_transforms()
        elif name == "Index health":
            self._layout_index()
        elif name == "Retrieval":
            self._layout_retrieval()
        elif name == "Compare":
            self._layout_compare()
        elif name == "Shift":
            self._layout_shift()
        elif name == "Layers":
            self._layout_layers()

    def _show_result_message(self, tab: str, message: str) -> None:
        """Put ``message`` in a control tab's results area and hide its charts."""
        page, extras = self._result_parts[tab]
        page.value = message
        for widget in extras:
            widget.layout.display = "none"

    def _show_results(self, tab: str) -> None:
        for widget in self._result_parts[tab][1]:
            widget.layout.display = None

    def _submit(self, tab: str, label: str, fn, done) -> None:
        """Run a panel's computation; on failure (or cancellation) the panel says so and can be tried again.

        Tabs with controls keep them: only their results area shows the message.
        """
        computing = italic(f"Computing {label}...")
        retry = "Change the settings and try again." if tab in self._result_parts else "Open the tab again to retry."

        def failed():
            message = italic(f"This could not be computed; see the message above (or it was cancelled). {retry}")
            if tab in self._result_parts:
                self._show_result_message(tab, message)
                return
            self._rendered.discard(tab)
            (self.overview if tab == "Overview" else self._messages[tab]).value = message

        if tab in self._result_parts:
            self._show_result_message(tab, computing)
        elif tab != "Overview":
            self._messages[tab].value = computing
        self.controller.submit(label, fn, done, failed)


def _title(data) -> str:
    """The dashboard's heading: the set's name and size."""
    return (f"{page_css()}<h3 style='margin:4px 0'>embgeo: {html.escape(data.name)}"
            f" <span class='embgeo-note'>{data.n:,} vectors x {data.dim} dims</span></h3>")
