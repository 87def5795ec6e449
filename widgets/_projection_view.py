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
        self.method.observe(self._on_projection_setting, "value")
        self.dims.observe(self._on_projection_setting, "value")
        self.color.observe(self._on_color, "value")
        self.projection_body = own(W.VBox([self.trust, own(W.HBox([
            self._figure_box, own(W.VBox([self.neighbours, self.selection], layout=W.Layout(width="340px")))]))]))
        self.projection_body.layout.display = "none"
        self.panels["Projection"].children = [own(W.HBox([self.method, self.dims, self.color])),
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
        self.figure = F.redraw(self._figure_in(self._figure_box), scatter)
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
        """Show the original-space neighbours of the point at ``position`` in the scatter trace."""
        row = int(self._proj.rows[self._shown[position]])
        c = self.controller
        c.selected_point = row
        table = c.neighbor_table(row)
        body = "".join(f"<tr><td>{t['rank']}</td><td>{html.escape(t['text'])}</td><td>{t['similarity']:.3f}</td></tr>"
                       for t in table)
        sim = "cosine" if c.metric == "cosine" else "dot" if c.metric == "dot" else "-distance"
        self.neighbours.value = (f"<b>{html.escape(c.data.label(row))}</b> (row {row}): nearest neighbours in "
                                 f"the original {c.data.dim}-D space<table class='embgeo-nn'><tr><th>#</th>"
                                 f"<th>item</th><th>{sim}</th></tr>{body}</table>")
        F.highlight_point(self.figure, position)

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
