"""The read-only tabs: Overview (verdict cards), Spectrum, Intrinsic dimension, Hubness.

A mixin of :class:`~.dashboard.Dashboard`: each tab is a VBox whose children are built once (a message
line, the panel's own FigureWidgets, a text block) and updated in place when its numbers arrive.
"""

from __future__ import annotations

import html
import json

import ipywidgets as W

from embgeo.analysis import verdicts_html

from . import _figures as F
from . import _options as O
from ._html import download_link, field_meaning, file_name, italic


class SummaryViews:
    """Overview, Spectrum, Intrinsic dimension and Hubness (see the module docstring)."""

    def _build_summary_views(self) -> None:
        own = self._own
        self.overview = own(W.HTML(italic("Open this tab to compute it.")))
        # figure slots: each FigureWidget is made the first time its tab draws (see Dashboard._figure_in)
        self._spectrum_box, self._lid_box, self._scale_box, self._hub_box = (own(W.Box()) for _ in range(4))
        self.spectrum_note, self.id_summary, self.hub_summary = own(W.HTML("")), own(W.HTML("")), own(W.HTML(""))
        # large sets start on the approximate table; the box asks for the exact one (minutes at 1,000,000)
        self.exact_box = own(W.Checkbox(value=self.controller.exact, indent=False,
                                        description=f"exact neighbours (slow above {O.APPROXIMATE_ABOVE:,} points)"))
        self.exact_box.observe(self._on_exact, "value")
        large = not self.controller.exact  # the controller chose the approximate table for this size
        self.export_button = own(W.Button(description="Export the report", icon="download",
                                          tooltip="The whole geometry report as JSON and as one HTML page that "
                                                  "opens offline"))
        self.export_button.on_click(lambda _: self.export_report())
        self.export_links = own(W.HTML(""))
        export = own(W.HBox([self.export_button, self.export_links], layout=W.Layout(align_items="center")))
        self.panels["Overview"].children = [self.exact_box, self.overview, export] if large else [self.overview,
                                                                                                  export]
        self.panels["Spectrum"].children = [self._messages["Spectrum"], self._spectrum_box, self.spectrum_note]
        self.panels["Intrinsic dimension"].children = [self._messages["Intrinsic dimension"], self.id_summary,
                                                       own(W.HBox([self._lid_box, self._scale_box]))]
        self.panels["Hubness"].children = [self._messages["Hubness"], own(W.HBox([self._hub_box, self.hub_summary]))]
        for name in ("Spectrum", "Intrinsic dimension", "Hubness"):
            self._set_visible(name, False)

    def _set_visible(self, tab: str, shown: bool) -> None:
        """Show or hide a summary tab's content (everything after its message line)."""
        for child in self.panels[tab].children[1:]:
            child.layout.display = None if shown else "none"

    def _render_summary(self, name: str) -> None:
        c = self.controller
        if name == "Overview":
            self.overview.value = italic("Computing the overview...")
            self.export_links.value = ""  # an export of other settings (metric, k, set) no longer applies
            self._submit(name, "overview (isotropy, hubness, intrinsic dimension)", c.cards, self._show_cards)
        elif name == "Spectrum":
            self._submit(name, "spectrum", lambda: (c.isotropy(), c.dimension_stats()), self._show_spectrum)
        elif name == "Intrinsic dimension":
            self._submit(name, "intrinsic dimension", c.intrinsic, self._show_intrinsic)
        elif name == "Hubness":
            self._submit(name, "hubness", c.hubness, self._show_hubness)

    def export_report(self) -> None:
        """The set's geometry report (computed once per metric and k) as two downloads: its ``to_dict()``
        as JSON and its standalone ``to_html()`` page (plotly inline, no network needed to open it)."""
        c = self.controller
        self.export_links.value = italic("Preparing the report...")

        def compute():
            report = c.report_of_this_set()
            c.step(90, "writing the JSON and the HTML page...")
            name = c.data.name
            return (download_link(file_name(name, ".json"), json.dumps(report.to_dict(), indent=1).encode(),
                                  "application/json", "report.json")
                    + download_link(file_name(name, ".html"), report.to_html().encode(), "text/html",
                                    "report.html (opens offline)"))

        def failed():
            self.export_links.value = italic("The report could not be exported; see the message above.")

        c.submit("the report export", compute, lambda links: setattr(self.export_links, "value", links), failed)

    def _on_exact(self, change) -> None:
        self.controller.exact = bool(change.new)
        self._rendered.clear()  # every tab built on the table draws again, from the new one
        self._render("Overview")

    def _show_cards(self, cards) -> None:
        c = self.controller
        self.overview.value = (verdicts_html(cards, style=False)
                               + f"<p class='embgeo-note'>Metric: {c.metric}; k = {c.k} neighbours. "
                                 f"{html.escape(c.table_note())} The same verdicts, thresholds and advice as "
                                 "<code>embgeo report</code>.</p>")

    def _show_spectrum(self, result) -> None:
        iso, (means, spread) = result
        rogue = [r["dim"] for r in iso.rogue_dimensions]
        figure = F.spectrum_figure(iso.eigenvalues, iso.explained_variance_ratio, means, rogue,
                                   alpha=iso.power_law_alpha, dim_std=spread)
        self.spectrum = F.redraw(self._figure_in(self._spectrum_box, share=1.0), figure)
        text = ("Right: each bar is a dimension's mean, its whisker one standard deviation; a rogue dimension "
                "has a mean far from 0 that shifts every cosine. "
                f"PCA needs {iso.pca_dim_90} / {iso.pca_dim_95} / {iso.pca_dim_99} of {iso.dim} components for "
                f"90 / 95 / 99 % of the variance; participation ratio {iso.participation_ratio:.1f}; "
                f"effective rank {iso.effective_rank:.1f}. Rogue dimensions (Timkey & van Schijndel, 2021): "
                + (", ".join(f"{r['dim']} ({r['share']:.0%} of the expected cosine)" for r in iso.rogue_dimensions)
                   or _no_rogue(iso)) + ".")
        self.spectrum_note.value = f"<p>{html.escape(text)}</p>"
        self._done("Spectrum")

    def _show_intrinsic(self, rep) -> None:
        self.lid_histogram = F.redraw(self._figure_in(self._lid_box, share=0.5), F.histogram_figure(
            rep.lid, title=f"Local intrinsic dimension (k = {rep.k})", xlabel="local ID", marker=rep.lid_median,
            marker_label=f"median {rep.lid_median:.1f}"))
        # Both curves on one length scale (the median distance each estimate looks at), as Denti et al.
        # plot them: decimation widens the neighbourhood by thinning points, GRIDE by using farther ranks.
        decimation, gride = "TwoNN (subsamples)", "GRIDE (ranks n1, 2n1)"
        curves = {decimation: (rep.scale_distance, rep.scale_twonn), gride: (rep.gride_distance, rep.gride_dimension)}
        hover = {decimation: [f"{int(m):,} points" for m in rep.scale_n],
                 gride: [f"ranks {int(r)}, {2 * int(r)}" for r in rep.gride_n1]}
        figure = F.scale_figure(curves, title="Intrinsic dimension across scales",
                                xlabel="neighbourhood radius (median distance)",
                                errors={decimation: rep.scale_twonn_std}, hover=hover)
        self.scale = F.redraw(self._figure_in(self._scale_box, share=0.5), figure)
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in rep.warnings)
        self.id_summary.value = (
            f"<p>TwoNN {rep.twonn:.1f} (CI {rep.twonn_ci[0]:.1f}-{rep.twonn_ci[1]:.1f}), MLE {rep.mle:.1f}, "
            f"PCA 90/95/99 %: {rep.pca_90}/{rep.pca_95}/{rep.pca_99}.</p>"
            "<p class='embgeo-note'>Right: the estimate at growing neighbourhood radius (Facco et al., "
            "2017; Denti et al., 2022). A flat stretch is a dimension you can trust; a curve that keeps "
            "falling or rising means the answer depends on the scale you look at.</p>"
            + (f"<ul class='embgeo-note'>{warn}</ul>" if warn else ""))
        self._done("Intrinsic dimension")

    def _show_hubness(self, rep) -> None:
        self.hub_histogram = F.redraw(self._figure_in(self._hub_box, share=0.6), F.histogram_figure(
            rep.k_occurrence, title=f"k-occurrence N_{rep.k}", xlabel="N_k", log_y=True, marker=rep.k,
            marker_label=f"k = {rep.k}"))
        rows = "".join(f"<tr><td>{int(r['index'])}</td><td>{html.escape(str(r['label']))}</td>"
                       f"<td>{int(r['k_occurrence'])}</td></tr>" for _, r in rep.top_hubs.head(15).iterrows())
        numbers = "".join(
            f"<tr><td>{name}</td><td><b>{value}</b></td><td class='embgeo-note'>{field_meaning(rep, key)}"
            "</td></tr>" for key, name, value in (
                ("skewness", f"skewness of N_{rep.k}", f"{rep.skewness:.2f}"),
                ("antihub_rate", "antihubs", f"{rep.antihub_rate:.1%}"),
                ("robin_hood", "Robin Hood index", f"{rep.robin_hood:.3f}"),
                ("hub_occupancy", "top-1 % hub occupancy", f"{rep.hub_occupancy:.1%}"),
                ("max_k_occurrence", "largest N_k", f"{int(rep.max_k_occurrence):,}")))
        self.hub_summary.value = (
            f"<table class='embgeo-nn embgeo-hub-numbers'>{numbers}</table>"
            f"<b>Top hubs</b><table class='embgeo-nn'><tr><th>row</th><th>item</th><th>N_k</th></tr>{rows}</table>")
        self._done("Hubness")

    def _done(self, tab: str) -> None:
        self._messages[tab].value = ""
        self._set_visible(tab, True)


def _no_rogue(iso) -> str:
    """Why no dimension is flagged, with the largest shares: a dimension can carry a fifth of the
    expected cosine and still not be rogue when half of the cosine needs many dimensions."""
    top = iso.top_dimensions[:3]
    if not top:
        return "none"
    shares = ", ".join(f"dimension {t['dim']} {t['share']:.1%}" for t in top)
    return (f"none flagged, because half of the expected cosine takes more than a few dimensions (the rule flags "
            f"a dimension only in a top set of at most max(3, d / 100) that carries half); the largest shares "
            f"are {shares}")
