"""The embgeo dashboard: an ipywidgets container of tabbed panels over one embedding set.

The view is thin: every number comes from :class:`~embgeo.widgets._controller.DashboardController`
(cached per setting), and every picture from :mod:`embgeo.widgets._figures`. Panels are computed the
first time their tab is opened; long work runs in a worker thread with a progress bar, and errors are
shown as a message in the page.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from . import _figures as F
from ._controller import (
    DEFAULT_INDEX_KINDS,
    DENSITY_THRESHOLD,
    DERIVED_COLOURS,
    INDEX_KINDS,
    INDEX_SWEEP,
    POINT_SAMPLE,
    TRANSFORM_LABELS,
    BeforeAfter,
    Card,
    DashboardController,
    transform_label,
    transform_params,
)

TABS = ("Overview", "Projection", "Spectrum", "Intrinsic dimension", "Hubness", "Transforms", "Index health",
        "Compare")

#: What the index-kind checkboxes say.
INDEX_KIND_LABELS = {"hnsw": "HNSW", "ivf": "IVF-Flat", "sq8": "8-bit scalar", "ivfpq": "IVF-PQ (slow to train)"}

_CSS = """
<style>
.embgeo-cards {display:flex; flex-wrap:wrap; gap:10px}
.embgeo-card {width:300px; border:1px solid #ddd; border-left:6px solid #999; border-radius:6px;
  padding:8px 10px; font-size:13px; line-height:1.35; background:#fff}
.embgeo-card.ok {border-left-color:#54A24B} .embgeo-card.warn {border-left-color:#EECA3B}
.embgeo-card.bad {border-left-color:#E45756} .embgeo-card.info {border-left-color:#4C78A8}
.embgeo-card .v {font-size:24px; font-weight:600} .embgeo-card .t {font-weight:600}
.embgeo-card .s {font-size:11px; text-transform:uppercase; float:right}
.embgeo-card .m, .embgeo-card .th {color:#555} .embgeo-card .a {margin-top:4px}
.embgeo-error {color:#a00; background:#fee; border:1px solid #e99; padding:6px 10px; border-radius:4px}
.embgeo-note {color:#555; font-size:12px}
.embgeo-warning {color:#6b5200; background:#fff8e1; border:1px solid #eeca3b; padding:6px 10px; border-radius:4px}
.embgeo-card .ch {font-size:13px; font-weight:600}
table.embgeo-nn {border-collapse:collapse; font-size:12px} table.embgeo-nn td, table.embgeo-nn th {padding:1px 6px}
</style>
"""


def card_html(card: Card) -> str:
    e = html.escape
    return (f"<div class='embgeo-card {card.status}'><span class='s'>{e(card.status)}</span>"
            f"<div class='t'>{e(card.title)}</div><div class='v'>{e(card.value)}</div>"
            f"<div class='m'>{e(card.meaning)}</div><div class='th'>Threshold: {e(card.threshold)}</div>"
            f"<div class='a'><b>Next:</b> {e(card.advice)}</div>"
            + (f"<div class='th'><i>{e(card.reference)}</i></div>" if card.reference else "") + "</div>")


def format_number(value) -> str:
    """A table cell: '-' for missing, thousands separators for integers, four significant digits otherwise."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    return f"{value:.4g}" if np.isfinite(value) else str(value)


def format_change(value) -> str:
    """A change with its sign ('+0.12', '-3'), or '-' when there is none."""
    return "-" if value is None else ("+" if value > 0 else "") + format_number(value)


def before_after_html(card: BeforeAfter) -> str:
    e = html.escape
    return (f"<div class='embgeo-card info'><div class='t'>{e(card.title)}</div>"
            f"<div class='v'>{e(format_number(card.before))} &rarr; {e(format_number(card.after))}</div>"
            f"<div class='ch'>change {e(format_change(card.change))}</div>"
            f"<div class='m'>{e(card.meaning)}</div></div>")


class Dashboard(W.VBox):
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

    Examples
    --------
    >>> from embgeo.widgets import Dashboard
    >>> Dashboard(vectors)  # doctest: +SKIP
    """

    def __init__(self, data, metadata=None, compare_with=None, *, background: bool = True, metric: str = "cosine"):
        self.controller = c = DashboardController(data, metadata, background=background, metric=metric,
                                                  compare_with=compare_with)
        self.progress = W.IntProgress(value=0, min=0, max=100, layout=W.Layout(width="200px"))
        self.status = W.Label("")
        self.error = W.HTML("")
        c.observe(lambda ch: setattr(self.progress, "value", ch.new), "progress")
        c.observe(lambda ch: setattr(self.status, "value", ch.new), "status")
        c.observe(self._show_error, "error")
        self.metric = W.Dropdown(options=["cosine", "euclidean", "dot"], value=metric, description="metric",
                                 layout=W.Layout(width="200px"))
        self.metric.observe(self._on_metric, "value")
        title = W.HTML(f"{_CSS}<h3 style='margin:4px 0'>embgeo: {html.escape(c.data.name)}"
                       f" <span class='embgeo-note'>{c.data.n:,} vectors x {c.data.dim} dims</span></h3>")
        self.panels = {name: W.VBox([W.HTML("<i>Open this tab to compute it.</i>")]) for name in TABS}
        self.tabs = W.Tab(children=list(self.panels.values()))
        for i, name in enumerate(TABS):
            self.tabs.set_title(i, name)
        self.tabs.observe(lambda ch: self._render(TABS[ch.new]), "selected_index")
        self._rendered: set[str] = set()
        self._proj = None  # the Projection on screen
        self._build_projection_controls()
        self._build_transform_controls()
        self._build_index_controls()
        self._build_compare_controls()
        super().__init__([title, W.HBox([self.metric, self.progress, self.status]), self.error, self.tabs])
        self._render("Overview")

    # ------------------------------------------------------------------------------ plumbing
    def _show_error(self, change) -> None:
        self.error.value = f"<div class='embgeo-error'>{change.new}</div>" if change.new else ""

    def _on_metric(self, change) -> None:
        self.controller.metric = change.new
        self._rendered.clear()
        self._render(TABS[self.tabs.selected_index or 0])

    def _render(self, name: str) -> None:
        if name in self._rendered:
            return
        self._rendered.add(name)
        self.panels[name].children = [W.HTML(f"<i>Computing {name.lower()}...</i>")]
        c = self.controller
        if name == "Overview":
            self._submit(name, "overview (isotropy, hubness, intrinsic dimension)", c.cards, self._show_cards)
        elif name == "Projection":
            self._compute_projection()
        elif name == "Spectrum":
            self._submit(name, "spectrum", lambda: (c.isotropy(), c.dimension_stats()), self._show_spectrum)
        elif name == "Intrinsic dimension":
            self._submit(name, "intrinsic dimension", c.intrinsic, self._show_intrinsic)
        elif name == "Hubness":
            self._submit(name, "hubness", c.hubness, self._show_hubness)
        elif name == "Transforms":
            self._layout_transforms()
        elif name == "Index health":
            self._layout_index()
        elif name == "Compare":
            self._layout_compare()

    def _submit(self, tab: str, label: str, fn, done, *, results: W.Box | None = None) -> None:
        """Run a panel's computation; on failure the panel says so and can be tried again.

        Panels with controls pass their ``results`` box: a failure replaces only the results, so the
        controls stay for another try.
        """
        def failed():
            if results is not None:
                results.children = [W.HTML("<i>This could not be computed; see the message above. Change the "
                                           "settings and try again.</i>")]
                return
            self._rendered.discard(tab)
            self.panels[tab].children = [W.HTML("<i>This panel could not be computed; see the message above. "
                                                "Open the tab again to retry.</i>")]
        if results is not None:
            results.children = [W.HTML(f"<i>Computing {html.escape(label)}...</i>")]
        self.controller.submit(label, fn, done, failed)

    # ------------------------------------------------------------------------------ overview
    def _show_cards(self, cards) -> None:
        self.panels["Overview"].children = [W.HTML(
            "<div class='embgeo-cards'>" + "".join(card_html(k) for k in cards) + "</div>"
            f"<p class='embgeo-note'>Metric: {self.controller.metric}; k = {self.controller.k} neighbours.</p>")]

    # ------------------------------------------------------------------------------ projection
    def _build_projection_controls(self) -> None:
        c = self.controller
        self.method = W.Dropdown(options=[("PCA", "pca"), ("UMAP", "umap")], value=c.method, description="method",
                                 layout=W.Layout(width="200px"))
        self.dims = W.ToggleButtons(options=[("2D", 2), ("3D", 3)], value=c.n_components,
                                    style={"button_width": "50px"})
        self.color = W.Dropdown(options=c.color_options(), value=c.color_by, description="colour by",
                                layout=W.Layout(width="260px"))
        self.trust = W.HTML("")
        self.neighbours = W.HTML("<i>Click a point to list its nearest neighbours in the original space.</i>")
        self.selection = W.HTML("<i>Lasso or box-select points to see their statistics.</i>")
        self.figure_box = W.Box()
        self.method.observe(self._on_projection_setting, "value")
        self.dims.observe(self._on_projection_setting, "value")
        self.color.observe(self._on_color, "value")

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
        shown = _shown_positions(len(rows))
        density = proj.coords if len(rows) > DENSITY_THRESHOLD and proj.n_components == 2 else None
        self._shown = shown  # trace position -> position in proj.rows
        hover = np.array([c.data.label(int(r)) for r in rows[shown]], dtype=object)
        fig = F.scatter_figure(proj.coords[shown], hover, density_xy=density,
                               title=f"{proj.method.upper()} ({proj.metric}), {len(shown):,} points")
        trace = F.points_trace(fig)
        trace.on_click(lambda tr, pts, state: pts.point_inds and self.click_point(pts.point_inds[0]))
        trace.on_selection(lambda tr, pts, state: self.select_points(pts.point_inds))
        self.figure = fig
        self.figure_box.children = [fig]
        self._apply_color()
        self.selection.value = ("<i>Lasso or box-select points to see their statistics.</i>" if proj.n_components == 2
                                else "<i>plotly's 3-D view has no lasso or box selection: switch to 2D to select a "
                                     "region. Clicking a point still lists its neighbours.</i>")
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
        panel = self.panels["Projection"]
        panel.children = [W.HBox([self.method, self.dims, self.color]), self.trust,
                          W.HBox([self.figure_box, W.VBox([self.neighbours, self.selection],
                                                          layout=W.Layout(width="340px"))])]

    def _on_color(self, change) -> None:
        c = self.controller
        c.color_by = change.new
        if self._proj is None:
            return
        self.controller.submit(f"colouring by {change.new}", lambda: c.color_values(), lambda _: self._apply_color())

    def _apply_color(self) -> None:
        c = self.controller
        values, kind, label = c.color_values(rows=self._proj.rows[self._shown])
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

    # ------------------------------------------------------------------------------ spectrum
    def _show_spectrum(self, result) -> None:
        iso, (means, spread) = result
        rogue = [r["dim"] for r in iso.rogue_dimensions]
        fig = F.spectrum_figure(iso.eigenvalues, iso.explained_variance_ratio, means, rogue,
                                alpha=iso.power_law_alpha, dim_std=spread)
        self.spectrum = fig
        note = ("Right: each bar is a dimension's mean, its whisker one standard deviation; a rogue dimension "
                "has a mean far from 0 that shifts every cosine. "
                f"PCA needs {iso.pca_dim_90} / {iso.pca_dim_95} / {iso.pca_dim_99} of {iso.dim} components for "
                f"90 / 95 / 99 % of the variance; participation ratio {iso.participation_ratio:.1f}; "
                f"effective rank {iso.effective_rank:.1f}. Rogue dimensions: "
                + (", ".join(f"{r['dim']} ({r['share']:.0%} of the expected cosine)" for r in iso.rogue_dimensions)
                   or "none") + " (Timkey & van Schijndel, 2021).")
        self.panels["Spectrum"].children = [fig, W.HTML(f"<p>{html.escape(note)}</p>")]

    # ------------------------------------------------------------------------------ intrinsic dimension
    def _show_intrinsic(self, rep) -> None:
        hist = F.histogram_figure(rep.lid, title=f"Local intrinsic dimension (k = {rep.k})", xlabel="local ID",
                                  marker=rep.lid_median, marker_label=f"median {rep.lid_median:.1f}")
        # Both curves on one length scale (the median distance each estimate looks at), as Denti et al.
        # plot them: decimation widens the neighbourhood by thinning points, GRIDE by using farther ranks.
        decimation, gride = "TwoNN (subsamples)", "GRIDE (ranks n1, 2n1)"
        curves = {decimation: (rep.scale_distance, rep.scale_twonn), gride: (rep.gride_distance, rep.gride_dimension)}
        hover = {decimation: [f"{int(m):,} points" for m in rep.scale_n],
                 gride: [f"ranks {int(r)}, {2 * int(r)}" for r in rep.gride_n1]}
        scale = F.scale_figure(curves, title="Intrinsic dimension across scales",
                               xlabel="neighbourhood radius (median distance)",
                               errors={decimation: rep.scale_twonn_std}, hover=hover)
        self.scale = scale
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in rep.warnings)
        summary = (f"<p>TwoNN {rep.twonn:.1f} (CI {rep.twonn_ci[0]:.1f}-{rep.twonn_ci[1]:.1f}), MLE {rep.mle:.1f}, "
                   f"PCA 90/95/99 %: {rep.pca_90}/{rep.pca_95}/{rep.pca_99}.</p>"
                   "<p class='embgeo-note'>Right: the estimate at growing neighbourhood radius (Facco et al., "
                   "2017; Denti et al., 2022). A flat stretch is a dimension you can trust; a curve that keeps "
                   "falling or rising means the answer depends on the scale you look at.</p>"
                   + (f"<ul class='embgeo-note'>{warn}</ul>" if warn else ""))
        self.panels["Intrinsic dimension"].children = [W.HTML(summary), W.HBox([hist, scale])]

    # ------------------------------------------------------------------------------ hubness
    def _show_hubness(self, rep) -> None:
        hist = F.histogram_figure(rep.k_occurrence, title=f"k-occurrence N_{rep.k}", xlabel="N_k", log_y=True,
                                  marker=rep.k, marker_label=f"k = {rep.k}")
        rows = "".join(f"<tr><td>{int(r['index'])}</td><td>{html.escape(str(r['label']))}</td>"
                       f"<td>{int(r['k_occurrence'])}</td></tr>" for _, r in rep.top_hubs.head(15).iterrows())
        summary = (f"<p>Skewness {rep.skewness:.2f}, antihubs {rep.antihub_rate:.1%}, Robin Hood index "
                   f"{rep.robin_hood:.3f}, top-1 % hub occupancy {rep.hub_occupancy:.1%}.</p>"
                   f"<b>Top hubs</b><table class='embgeo-nn'><tr><th>row</th><th>item</th><th>N_k</th></tr>{rows}</table>")
        self.panels["Hubness"].children = [W.HBox([hist, W.HTML(summary)])]

    # ------------------------------------------------------------------------------ transform playground
    def _build_transform_controls(self) -> None:
        c = self.controller
        methods = c.available_transforms()
        self.transform = W.Dropdown(options=[(TRANSFORM_LABELS.get(m, m), m) for m in methods], value=methods[0],
                                    description="transform", layout=W.Layout(width="380px"))
        self.transform_param_box = W.HBox()
        self.transform_params: dict[str, W.Widget] = {}
        self.transform_apply = W.Button(description="Apply", button_style="primary", icon="play",
                                        tooltip="Fit the transform on this set and compare before with after")
        self.transform_help = W.HTML("")
        self.transform_results = W.VBox()
        self.transform.observe(lambda ch: self._show_transform_params(), "value")
        self.transform_apply.on_click(lambda _: self.apply_transform())
        self._show_transform_params()

    def _show_transform_params(self) -> None:
        """One control per parameter of the chosen transform, at the analysis defaults."""
        c = self.controller
        widgets = {}
        for spec in transform_params(self.transform.value, c.data.dim):
            style, layout = {"description_width": "initial"}, W.Layout(width="170px")
            if spec.kind == "int":
                w = W.BoundedIntText(value=spec.default, min=spec.low, max=spec.high, description=spec.label,
                                     style=style, layout=layout)
            elif spec.kind == "float":
                w = W.BoundedFloatText(value=spec.default, min=spec.low, max=1e6 if spec.high is None else spec.high,
                                       step=1e-6, description=spec.label, style=style, layout=layout)
            else:
                w = W.Dropdown(options=list(spec.options), value=spec.default, description=spec.label,
                               style=style, layout=W.Layout(width="220px"))
            w.tooltip = spec.help
            widgets[spec.name] = w
        self.transform_params = widgets
        self.transform_param_box.children = list(widgets.values())
        helps = [f"<b>{html.escape(spec.label)}</b>: {html.escape(spec.help)}"
                 for spec in transform_params(self.transform.value, c.data.dim)]
        note = "" if "zipfian" in c.available_transforms() else (
            " Zipfian whitening is not offered: it weights every statistic by item frequency, and this set "
            "has no weights.")
        described = "; ".join(helps) + "." if helps else "No parameters."
        self.transform_help.value = (f"<div class='embgeo-note'>{described} The transform "
                                     f"is fitted on this set and applied to it; the cards compare every "
                                     f"geometry number before and after.{html.escape(note)}</div>")

    def transform_setting(self) -> tuple[str, dict]:
        """The transform and parameters the controls show."""
        return self.transform.value, {name: w.value for name, w in self.transform_params.items()}

    def _layout_transforms(self) -> None:
        # (re)opened, e.g. after a metric change: results of another metric must not stay on screen
        self.transform_results.children = [W.HTML("<i>Choose a transform and its parameters, then press Apply.</i>")]
        self.panels["Transforms"].children = [
            W.HBox([self.transform, self.transform_param_box, self.transform_apply]), self.transform_help,
            self.transform_results]

    def apply_transform(self) -> None:
        """Fit the chosen transform, then show before/after cards and projections (worker thread)."""
        c = self.controller
        method, params = self.transform_setting()
        label = transform_label(method, params)
        self._submit("Transforms", f"{label}: before and after",
                     lambda: (method, params, c.transform_comparison(method, params),
                              c.transform_projections(method, params)),
                     self._show_transform, results=self.transform_results)

    def _show_transform(self, result) -> None:
        method, params, comparison, (before, after) = result
        c = self.controller
        self.transform_cards = c.before_after(comparison)
        cards = W.HTML("<div class='embgeo-cards'>" + "".join(before_after_html(k) for k in self.transform_cards)
                       + "</div>")
        shown = _shown_positions(len(before.rows))
        hover = np.array([c.data.label(int(r)) for r in before.rows[shown]], dtype=object)
        label = transform_label(method, params)
        self.transform_figures = F.before_after_scatter(
            before.coords[shown], after.coords[shown], hover,
            titles=(f"Before: PCA ({before.metric})", f"After {label}: PCA ({after.metric})"))
        self._color_by_metadata(self.transform_figures, before.rows[shown])
        trust = (f"PCA keeps {before.explained_variance_ratio.sum():.1%} of the variance before and "
                 f"{after.explained_variance_ratio.sum():.1%} after; read the maps as a sketch, the cards as the "
                 f"numbers. {comparison.name_b}: {after.n_total:,} vectors.")
        if len(shown) < len(before.rows):
            trust += f" A random sample of {len(shown):,} points is drawn."
        self.transform_results.children = [cards, W.HBox(list(self.transform_figures)),
                                           W.HTML(f"<p class='embgeo-note'>{html.escape(trust)}</p>")]
        self._refresh_compare_choices()

    def _color_by_metadata(self, figures, rows) -> None:
        """Colour side-by-side maps by the Projection tab's colour when it is a metadata column.

        A metadata column describes the items, so it means the same in both spaces; derived colours
        (norm, local ID, k-occurrence) are properties of the original space and would mislabel the other.
        """
        c = self.controller
        if c.color_by in DERIVED_COLOURS:
            return
        values, kind, label = c.color_values(rows=rows)
        for fig in figures:
            F.set_marker_colors(fig, values, kind, label)

    # ------------------------------------------------------------------------------ index health
    def _build_index_controls(self) -> None:
        c = self.controller
        self.index_kinds = {kind: W.Checkbox(value=kind in DEFAULT_INDEX_KINDS, description=INDEX_KIND_LABELS[kind],
                                             indent=False, layout=W.Layout(width="auto"))
                            for kind in INDEX_KINDS}
        self.index_holdout = W.BoundedIntText(value=c.default_holdout(), min=1, max=max(1, c.data.n - 1),
                                              description="held-out queries", style={"description_width": "initial"},
                                              layout=W.Layout(width="220px"))
        self.index_run = W.Button(description="Run", button_style="primary", icon="play",
                                  tooltip="Build the indexes and sweep their search settings")
        self.index_results = W.VBox()
        self.index_run.on_click(lambda _: self.run_index_health())

    def _layout_index(self) -> None:
        c = self.controller
        self.index_results.children = [W.HTML("<i>Press Run to build the indexes and measure them.</i>")]
        sweep = "; ".join(f"{INDEX_KIND_LABELS[k].split(' (')[0]}: {', '.join(map(str, v))} "
                          f"({'efSearch' if 'efSearch' in INDEX_SWEEP[k] else 'nprobe'})"
                          for k, v in ((k, next(iter(INDEX_SWEEP[k].values()))) for k in INDEX_SWEEP))
        explain = (f"<p class='embgeo-note'>How well a faiss vector index finds the true {c.k} nearest neighbours "
                   f"on this data. The held-out queries are random rows taken out of the corpus; exact search "
                   f"gives their true neighbours, then each index is built on the rest and searched at a few "
                   f"search-effort settings ({html.escape(sweep)}). Building indexes takes a while on large "
                   "sets, so nothing runs until you press Run.</p>")
        self.panels["Index health"].children = [
            W.HBox([*self.index_kinds.values(), self.index_holdout, self.index_run]), W.HTML(explain),
            self.index_results]

    def index_setting(self) -> tuple[tuple[str, ...], int]:
        """The index kinds ticked and the held-out query count."""
        return tuple(k for k, box in self.index_kinds.items() if box.value), int(self.index_holdout.value)

    def run_index_health(self) -> None:
        """Build the ticked index kinds and sweep them (worker thread, with progress)."""
        c = self.controller
        kinds, holdout = self.index_setting()
        self._submit("Index health", "index health (" + ", ".join(kinds) + ")",
                     lambda: c.index_health(kinds, holdout), self._show_index, results=self.index_results)

    def _show_index(self, rep) -> None:
        c = self.controller
        e = html.escape
        self.index_report = rep
        rows = c.index_rows(rep)
        self.index_figures = {"pareto": F.pareto_figure(rows, k=rep.k), "memory": F.memory_figure(rows, k=rep.k)}
        body = "".join(
            f"<tr><td>{e(r['label'])}</td><td>{format_number(r['recall'])}</td><td>{r['qps']:,.0f}</td>"
            f"<td>{format_number(r['build_seconds'])}</td><td>{format_number(r['bytes_per_vector'])}</td>"
            f"<td>{'yes' if r['pareto'] else ''}</td></tr>" for r in rows)
        table = (f"<b>Every setting</b> ({rep.n_queries:,} queries, {rep.query_source}, {rep.metric}, k = {rep.k}; "
                 f"exact search took {rep.exact.seconds:.2f} s)<table class='embgeo-nn embgeo-index'><tr>"
                 f"<th>setting</th><th>recall@{rep.k}</th><th>QPS (1 thread)</th><th>build s</th>"
                 f"<th>bytes / vector</th><th>Pareto</th></tr>{body}</table>")
        reach = rep.reachability
        parts = [f"<p><b>Never retrieved:</b> {reach.never_retrieved_rate:.1%} of the corpus is in no held-out "
                 f"query's true top-{reach.k} (a uniform random top-{reach.k} would leave "
                 f"{reach.never_retrieved_expected:.1%}; far more means the queries crowd onto hubs)."]
        if reach.corpus_never_retrieved_rate is not None:
            examples = ", ".join(e(x) for x in reach.corpus_never_retrieved_examples[:8])
            parts.append(f" With every item as a query, {reach.corpus_never_retrieved_rate:.1%} are in nobody's "
                         f"top-{reach.k} (antihubs; Radovanovic et al., 2010)" + (f", e.g. {examples}" if examples
                                                                                  else "") + ".")
        parts.append("</p>")
        widgets = [W.HTML(table), W.HBox([self.index_figures["pareto"], self.index_figures["memory"]])]
        diff = rep.difficulty
        if diff is None:
            parts.append("<p class='embgeo-note'>Query difficulty needs distances; it is not defined for the dot "
                         "product. Switch the metric to cosine or euclidean to see recall by difficulty.</p>")
        else:
            self.index_figures["buckets"] = F.bucket_figure(diff.recall_by_bucket, k=rep.k)
            widgets.append(self.index_figures["buckets"])
            hard = "".join(
                f"<tr><td>{e(str(h['label']))}</td><td>{format_number(h['lid'])}</td>"
                f"<td>{format_number(h['relative_contrast'])}</td><td>{format_number(h['expansion'])}</td>"
                f"<td>{format_number(h['mean_recall'])}</td></tr>" for h in diff.hardest)
            parts.append(
                f"<p>Query difficulty (Amsaleg et al., 2015; Aumueller &amp; Ceccarello, 2021): median local ID "
                f"{format_number(diff.lid_median)}, relative contrast {format_number(diff.rc_median)}, expansion "
                f"{format_number(diff.expansion_median)} (contrast and expansion near 1 = hard).</p>"
                f"<b>Hardest queries</b> (highest local ID)<table class='embgeo-nn embgeo-hardest'><tr><th>query</th>"
                f"<th>local ID</th><th>relative contrast</th><th>expansion</th><th>mean recall</th></tr>{hard}"
                "</table>")
        if rep.ivf_balance is not None:
            b = rep.ivf_balance
            parts.append(f"<p class='embgeo-note'>IVF lists: {b.n_lists}, imbalance factor "
                         f"{format_number(b.imbalance_factor)} (1 = even), {b.empty_lists} empty.</p>")
        widgets.append(W.HTML("".join(parts)))
        self.index_results.children = widgets

    # ------------------------------------------------------------------------------ compare
    def _build_compare_controls(self) -> None:
        self.compare_choice = W.Dropdown(options=self.controller.compare_choices(), description="compare with",
                                         style={"description_width": "initial"}, layout=W.Layout(width="520px"))
        self.compare_run = W.Button(description="Compare", button_style="primary", icon="play",
                                    tooltip="Compute the geometry of both sets and put it side by side")
        self.compare_results = W.VBox()
        self.compare_run.on_click(lambda _: self.run_compare())

    def _refresh_compare_choices(self) -> None:
        """Offer transforms applied in the playground too, keeping the current choice."""
        current = self.compare_choice.value
        options = self.controller.compare_choices()
        self.compare_choice.options = options
        if current in [key for _, key in options]:
            self.compare_choice.value = current

    def _layout_compare(self) -> None:
        self._refresh_compare_choices()
        self.compare_results.children = [W.HTML("<i>Choose a second set and press Compare.</i>")]
        explain = ("<p class='embgeo-note'>A is this set, B the one you choose: another model's vectors of the "
                   "same items (pass <code>Dashboard(data, compare_with=other)</code>), a post-processed copy of "
                   "this set, or a bundled sample. Every number of the two geometry reports is shown side by side; "
                   "when both hold the same items, row for row, also the share of each item's k nearest neighbours "
                   "kept from A to B and, with a <code>label</code> column, the k-NN label accuracy of each.</p>")
        self.panels["Compare"].children = [W.HBox([self.compare_choice, self.compare_run]), W.HTML(explain),
                                           self.compare_results]

    def run_compare(self) -> None:
        """Compare this set with the chosen one (worker thread, with progress)."""
        c = self.controller
        key = self.compare_choice.value
        self._submit("Compare", "comparison", lambda: (c.comparison(key), c.comparison_notes(key)),
                     self._show_compare, results=self.compare_results)

    def _show_compare(self, result) -> None:
        comparison, notes = result
        c = self.controller
        e = html.escape
        self.comparison = comparison
        self.compare_rows = c.comparison_table(comparison)
        warnings = "".join(f"<div class='embgeo-warning'>{e(n)}</div>" for n in notes)
        lines = [f"<p><b>A</b>: {e(comparison.name_a)}; <b>B</b>: {e(comparison.name_b)} ({comparison.metric}, "
                 f"k = {comparison.k}).</p>"]
        if comparison.neighborhood_preservation is not None:
            lines.append(f"<p><b>k-NN overlap</b>: {comparison.neighborhood_preservation:.1%} of each item's "
                         f"{comparison.k} nearest neighbours in A are among its {comparison.k} nearest in B "
                         "(Venna &amp; Kaski, 2001).</p>")
        if comparison.knn_accuracy is not None:
            acc = comparison.knn_accuracy
            lines.append(f"<p><b>k-NN label accuracy</b> (leave-one-out vote on <code>label</code>): "
                         f"A {acc['a']:.1%}, B {acc['b']:.1%}.</p>")
        body = "".join(
            f"<tr><td>{e(r['metric'])}</td><td>{format_number(r['a'])}</td><td>{format_number(r['b'])}</td>"
            f"<td>{format_change(r['change'])}</td><td class='embgeo-note'>{e(r['meaning'])}</td></tr>"
            for r in self.compare_rows)
        table = (f"<table class='embgeo-nn embgeo-compare'><tr><th>metric</th><th>A: {e(comparison.name_a)}</th>"
                 f"<th>B: {e(comparison.name_b)}</th><th>change (B - A)</th><th>meaning</th></tr>{body}</table>")
        self.compare_results.children = [W.HTML(warnings + "".join(lines) + table)]


def _shown_positions(n: int) -> np.ndarray:
    """Positions of the points drawn individually: all of them, or a fixed random sample above the threshold."""
    if n <= DENSITY_THRESHOLD:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, POINT_SAMPLE, replace=False))
