"""The Projection tab: a 2-D/3-D PCA or UMAP map with its trust scores, colouring, click and lasso.

A mixin of :class:`~.dashboard.Dashboard`. The map is one FigureWidget for the dashboard's life,
redrawn in place for every method, dimension and metric (the click and selection handlers are attached
to each new points trace).
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from . import _figures as F
from . import _options as O
from ._html import italic
from ._search import MAX_TEXT_MATCHES, search

#: The neighbour and selection lists' column beside the map, in pixels.
_SIDE_PX = 340
_SELECT_HINT = "Lasso or box-select points to see their statistics."
_NO_LASSO_HINT = ("plotly's 3-D view has no lasso or box selection: switch to 2D to select a region. Clicking a "
                  "point still lists its neighbours.")


def shown_positions(n: int) -> np.ndarray:
    """Positions of the points drawn individually: all of them, or a fixed random sample above the threshold."""
    if n <= O.DENSITY_THRESHOLD:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, O.POINT_SAMPLE, replace=False))


class ProjectionView:
    """The Projection tab (see the module docstring)."""

    def _build_projection_view(self) -> None:
        c, own = self.controller, self._own
        self.method = own(W.Dropdown(options=[("PCA", "pca"), ("UMAP", "umap")], value=c.method,
                                     description="method", layout=W.Layout(width="200px")))
        self.dims = own(W.ToggleButtons(options=[("2D", 2), ("3D", 3)], value=c.n_components,
                                        style={"button_width": "50px"}))
        self.color = own(W.Dropdown(options=c.color_options(), value=c.color_by, description="colour by",
                                    layout=W.Layout(width="260px")))
        self.trust = own(W.HTML(""))
        self.neighbours = own(W.HTML(italic("Click a point to list its nearest neighbours in the original space.")))
        self.selection = own(W.HTML(italic(_SELECT_HINT)))
        self.figure = None  # the map's FigureWidget, made at the first draw and redrawn in place after
        self._figure_box = own(W.Box())
        self._proj = None  # the Projection on screen
        self._shown = np.arange(0)  # trace position -> position in the projection's rows
        self.search_box = own(W.Text(placeholder="find a word or a sentence", layout=W.Layout(width="260px"),
                                     continuous_update=False))
        self.search_button = own(W.Button(description="Find", icon="search", layout=W.Layout(width="80px"),
                                          tooltip="An item by its text, or a new text by its meaning (embedded "
                                                  "offline with the bundled model)"))
        self._searched = None  # the last query searched: Enter (or leaving the box) and Find do not repeat it
        self.search_result = None
        self.search_box.observe(lambda ch: self.find(ch.new), "value")
        self.search_button.on_click(lambda _: self.find(self.search_box.value))
        self.method.observe(self._on_projection_setting, "value")
        self.dims.observe(self._on_projection_setting, "value")
        self.color.observe(self._on_color, "value")
        self.projection_body = own(W.VBox([self.trust, own(W.HBox([
            self._figure_box, own(W.VBox([self.neighbours, self.selection], layout=W.Layout(width=f"{_SIDE_PX}px")))]))]))
        self.projection_body.layout.display = "none"
        self.panels["Projection"].children = [own(W.HBox([self.method, self.dims, self.color, self.search_box,
                                                          self.search_button])),
                                              self._messages["Projection"], self.projection_body]

    def _on_projection_setting(self, change) -> None:
        self.controller.method, self.controller.n_components = self.method.value, self.dims.value
        self._compute_projection()

    def _compute_projection(self) -> None:
        c = self.controller
        label = f"{c.method.upper()} {c.n_components}-D projection"
        if c.method == "umap" and not c.is_cached("projection", "umap", c.n_components, c.metric):
            label += " (UMAP can take a minute)"
        self._submit("Projection", label, lambda: (c.projection(), c.color_values(rows=None)),
                     self._show_projection)

    def _show_projection(self, result) -> None:
        proj, _ = result
        c = self.controller
        self._proj = proj
        rows = proj.rows
        shown = shown_positions(len(rows))
        density = proj.coords if len(rows) > O.DENSITY_THRESHOLD and proj.n_components == 2 else None
        self._shown = shown
        hover = np.array([c.data.label(int(r)) for r in rows[shown]], dtype=object)
        scatter = F.scatter_figure(proj.coords[shown], hover, density_xy=density, density_bins=O.DENSITY_BINS,
                                   title=f"{proj.method.upper()} ({proj.metric}), {len(shown):,} points")
        self.figure = F.redraw(self._figure_in(self._figure_box, share=1.0, beside_px=_SIDE_PX + 10), scatter)
        trace = F.points_trace(self.figure)
        trace.on_click(lambda tr, pts, state: pts.point_inds and self.click_point(pts.point_inds[0]))
        trace.on_selection(lambda tr, pts, state: self.select_points(pts.point_inds))
        self._apply_color()
        self.selection.value = italic(_SELECT_HINT if proj.n_components == 2 else _NO_LASSO_HINT)
        notes = []
        if proj.metric != c.metric:
            notes.append(f"UMAP needs a distance, and {c.metric} is not one: this map uses cosine.")
        if proj.sampled:
            notes.append(f"UMAP was fitted on a uniform sample of {len(rows):,} of {proj.n_total:,} points.")
        if len(shown) < len(rows) and density is None:
            notes.append(f"{len(rows):,} points are too many to draw one by one in 3-D: a random sample of "
                         f"{len(shown):,} is shown (the 2-D view adds a density layer of all points).")
        if density is not None:
            notes.append(f"{len(rows):,} points are too many to draw one by one: the grey layer shows the density "
                         f"of all of them, with a random sample of {len(shown):,} drawn on top.")
        evr = ("" if proj.explained_variance_ratio is None else
               f" PCA keeps {proj.explained_variance_ratio.sum():.1%} of the variance.")
        self.trust.value = (
            f"<b>Trust:</b> {proj.knn_preservation:.1%} of each point's {proj.k} nearest neighbours are kept "
            f"(kNN preservation); trustworthiness {proj.trustworthiness:.3f} (1 = no false neighbours; "
            f"Venna & Kaski 2001), on {proj.trust_sample:,} points.{evr} "
            "Read clusters with caution when preservation is low."
            + "".join(f"<div class='embgeo-note'>{html.escape(n)}</div>" for n in notes))
        self._messages["Projection"].value = ""
        self.projection_body.layout.display = None

    def _on_color(self, change) -> None:
        c = self.controller
        c.color_by = change.new
        if self._proj is None:
            return
        c.submit(f"colouring by {change.new}", lambda: c.color_values(), lambda _: self._apply_color())

    def _apply_color(self) -> None:
        values, kind, label = self.controller.color_values(rows=self._proj.rows[self._shown])
        F.set_marker_colors(self.figure, values, kind, label)

    def click_point(self, position: int) -> None:
        """Show the original-space neighbours of the point at ``position`` in the scatter trace, and mark
        them on the map."""
        row = int(self._proj.rows[self._shown[position]])
        c = self.controller
        c.selected_point = row
        table = c.neighbor_table(row)
        self.neighbours.value = (f"<b>{html.escape(c.data.label(row))}</b> (row {row}): nearest neighbours in "
                                 f"the original {c.data.dim}-D space{self._neighbour_rows(table)}")
        self._mark([row], [t["row"] for t in table])

    def _neighbour_rows(self, table) -> str:
        c = self.controller
        sim = "cosine" if c.metric == "cosine" else "dot" if c.metric == "dot" else "-distance"
        body = "".join(f"<tr><td>{t['rank']}</td><td>{html.escape(t['text'])}</td><td>{t['similarity']:.3f}</td></tr>"
                       for t in table)
        return f"<table class='embgeo-nn'><tr><th>#</th><th>item</th><th>{sim}</th></tr>{body}</table>"

    def _mark(self, main_rows, other_rows) -> int:
        """Enlarge the points of ``main_rows`` and, less, of ``other_rows`` on the map; returns how many of
        them are drawn (a sampled map may leave some out)."""
        if self._proj is None or self.figure is None:
            return 0
        position = {int(r): i for i, r in enumerate(self._proj.rows[self._shown])}
        main = [position[r] for r in main_rows if r in position]
        other = [position[r] for r in other_rows if r in position]
        F.highlight_points(self.figure, main, other)
        return len(set(main) | set(other))

    def find(self, query: str) -> None:
        """The search box: an item by its text, or the query embedded and searched (see :mod:`._search`);
        the result is listed beside the map and marked on it."""
        if not (query or "").strip() or query == self._searched:
            return
        c = self.controller
        self._searched = query

        def show(result):
            lines = [f"<b>{html.escape(result.query)}</b>: {html.escape(result.note)}"]
            if result.neighbours:
                lines.append(self._neighbour_rows(result.neighbours))
            if result.matches:
                items = "".join(f"<li>{html.escape(c.data.label(r))}</li>" for r in result.matches)
                lines.append(f"<p>Items whose text contains it ({len(result.matches)}"
                             f"{' or more' if len(result.matches) == MAX_TEXT_MATCHES else ''}):</p>"
                             f"<ul style='margin:0;padding-left:18px'>{items}</ul>")
            elif result.how == "text":
                lines.append("<p>No item's text contains it.</p>")
            main = [result.row] if result.row is not None else []
            marked = self._mark(main, [r for r in result.marked_rows() if r not in main])
            total = len(result.marked_rows())
            if marked < total:
                lines.append(f"<p class='embgeo-note'>{marked} of the {total} items found are drawn on this map "
                             "(the others are outside its sample).</p>")
            self.neighbours.value = "".join(lines)
            self.search_result = result

        c.submit(f"searching for {query.strip()[:40]!r}", lambda: search(c, query), show)

    def select_points(self, positions) -> None:
        """Show statistics of the points selected (by trace position) with lasso or box."""
        positions = np.asarray(list(positions), dtype=np.int64)
        if len(positions) == 0:
            return
        rows = self._proj.rows[self._shown[positions]]
        self.controller.selected_rows = rows
        s = self.controller.selection_stats(rows)
        tops = ", ".join(f"{html.escape(str(k))} ({v})" for k, v in s.get("top_label", []))
        examples = ", ".join(html.escape(t) for t in s.get("examples", []))
        self.selection.value = (f"<b>Selection:</b> {s['count']:,} points ({s['share']:.1%})<br>"
                                f"mean cosine inside: {s['mean_cosine']:.3f}{self._whole_set_cosine()}<br>"
                                f"mean norm: {s['mean_norm']:.3f}"
                                + (f"<br>most common labels: {tops}" if tops else "")
                                + (f"<br>e.g. {examples}" if examples else ""))

    def _whole_set_cosine(self) -> str:
        c = self.controller
        if not c.is_cached("isotropy", c.metric):
            return ""
        return f" (whole set {c.isotropy().mean_cosine:.3f})"
