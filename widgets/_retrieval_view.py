"""The Retrieval tab: what the space's geometry does to similarity search, beyond the index.

A mixin of :class:`~.dashboard.Dashboard`. On opening it shows two parts of the set's geometry report
(computed once per metric and k, shared with Compare and the export): distance concentration (relative
contrast and expansion) and cosine against the raw inner product (how much the neighbour lists change
when norms count). Two buttons run the heavier analyses on request: hubness reduction (every method's
skewness, Robin Hood index and largest N_k after re-scoring), a compression sweep (recall@k of
exhaustive search over PCA, prefix, random-projection, int8, binary and PQ codes) and index-size scaling
(one fixed HNSW setting's recall and the neighbour margin on nested subsets, with the fitted trend).
"""

from __future__ import annotations

import html

import ipywidgets as W

from embgeo.analysis import compression_report, hubness_reduction_report, index_scaling

from . import _figures as F
from ._html import field_meaning, format_number, italic

_PRESS = "Press a button to run it."


def _rows(result, fields) -> str:
    """One row per field: its name, value and meaning (from the result's own field docs)."""
    return "".join(f"<tr><td>{html.escape(name)}</td><td><b>{value}</b></td>"
                   f"<td class='embgeo-note'>{field_meaning(result, field)}</td></tr>" for field, name, value in fields)


class RetrievalView:
    """The Retrieval tab (see the module docstring)."""

    def _build_retrieval_view(self) -> None:
        own = self._own
        self.retrieval_page = own(W.HTML(italic("Open this tab to compute it.")))
        self.reduce_run = own(W.Button(description="Reduce hubness", icon="play", layout=W.Layout(width="auto"),
                                       tooltip="Re-score the neighbour lists with each hubness-reduction method"))
        self.reduce_run.on_click(lambda _: self.run_hubness_reduction())
        self.compress_run = own(W.Button(description="Compression sweep", icon="play", layout=W.Layout(width="auto"),
                                         tooltip="Recall@k of exhaustive search over compressed vectors"))
        self.compress_run.on_click(lambda _: self.run_compression())
        self.scaling_run = own(W.Button(description="Index-size scaling", icon="play", layout=W.Layout(width="auto"),
                                        tooltip="Recall of one fixed HNSW setting as the corpus grows"))
        self.scaling_run.on_click(lambda _: self.run_index_scaling())
        self.reduce_page, self.compress_page = own(W.HTML(italic(_PRESS))), own(W.HTML(""))
        self.scaling_page, self._scaling_box = own(W.HTML("")), own(W.Box(layout=W.Layout(width="100%")))
        self.panels["Retrieval"].children = [
            self.retrieval_page, own(W.HBox([self.reduce_run, self.compress_run, self.scaling_run])),
            self.reduce_page, self.compress_page, self.scaling_page, self._scaling_box]

    def _layout_retrieval(self) -> None:
        c = self.controller
        self.reduce_page.value, self.compress_page.value, self.scaling_page.value = italic(_PRESS), "", ""
        self._scaling_box.layout.display = "none"  # the last set's curve is not this one's
        self.retrieval_page.value = italic("Computing distance concentration and cosine against dot...")

        def failed():
            self._rendered.discard("Retrieval")
            self.retrieval_page.value = italic("This could not be computed; see the message above.")

        c.submit("distance concentration and cosine vs dot", c.report_of_this_set, self._show_retrieval, failed)

    def _show_retrieval(self, report) -> None:
        conc, cvd = report.concentration, report.cosine_vs_dot
        parts = []
        if conc is not None:
            lo, hi = conc.relative_contrast_ci
            parts.append(
                f"<b>Distance concentration</b> ({conc.sample_size:,} query points, k = {conc.k})"
                "<table class='embgeo-nn embgeo-concentration'>" + _rows(conc, (
                    ("relative_contrast_median", "relative contrast (median)",
                     f"{format_number(conc.relative_contrast_median)} [{format_number(lo)}, {format_number(hi)}]"),
                    ("expansion_median", "expansion (median)", format_number(conc.expansion_median)),
                )) + "</table>")
        if cvd is not None:
            parts.append(
                f"<b>Cosine against the raw inner product</b> ({cvd.sample_size:,} query points, k = {cvd.k})"
                "<table class='embgeo-nn embgeo-cosine-dot'>" + _rows(cvd, (
                    ("jaccard_mean", "neighbour lists shared (mean Jaccard)", format_number(cvd.jaccard_mean)),
                    ("spearman_median", "rank agreement (median Spearman)", format_number(cvd.spearman_median)),
                    ("norm_cv", "spread of the norms (CV)", format_number(cvd.norm_cv)),
                )) + "</table>")
        self.retrieval_page.value = "".join(parts) or italic("Neither part applies to this set and metric.")

    def _on_request(self, page: W.HTML, label: str, key: tuple, compute, show, *, running: str, failure: str) -> None:
        """Run one button's analysis as a task (cached under ``key``): ``page`` says ``running`` meanwhile,
        ``show`` draws the result, and a failure leaves ``failure`` on the page."""
        c = self.controller
        page.value = italic(running)
        c.submit(label, lambda: c._cached(key, compute), show, lambda: setattr(page, "value", italic(failure)))

    def run_hubness_reduction(self) -> None:
        c = self.controller

        def compute():
            return hubness_reduction_report(c.table_set(), k=c.k, metric=c.metric)

        def show(rep):
            best = rep.best_method
            rows = "".join(
                f"<tr><td>{html.escape(method)}{' &larr; best' if method == best else ''}</td>"
                f"<td>{format_number(rep.skewness_after[method])}</td><td>{format_number(rep.robin_hood_after[method])}"
                f"</td><td>{rep.max_occurrence_after[method]:,}</td></tr>" for method in rep.skewness_after)
            self.reduce_page.value = (
                f"<b>Hubness reduction</b> (k = {rep.k}, {rep.n_candidates} candidates per point): skewness "
                f"{format_number(rep.skewness_before)}, Robin Hood {format_number(rep.robin_hood_before)}, largest "
                f"N_k {rep.max_occurrence_before:,} before; the best method here is <b>{html.escape(best)}</b>."
                "<table class='embgeo-nn embgeo-reduction'><tr><th>method</th><th>skewness</th><th>Robin Hood</th>"
                f"<th>largest N_k</th></tr>{rows}</table><p class='embgeo-note'>{field_meaning(rep, 'skewness_after')}</p>")

        self._on_request(self.reduce_page, "hubness reduction", ("hubness_reduction", c.metric, c.k), compute, show,
                         running="Re-scoring the neighbour lists...",
                         failure="Hubness reduction could not be computed; see the message above.")

    def run_compression(self) -> None:
        c = self.controller
        holdout = c.default_holdout()

        def compute():
            return compression_report(c.data, k=c.k, metric=c.metric, holdout=holdout, random_state=0)

        def show(rep):
            rows = "".join(
                f"<tr><td>{html.escape(s['method'])}</td><td>{html.escape(', '.join(f'{k}={v}' for k, v in s['params'].items()) or '-')}"
                f"</td><td>{s['bytes_per_vector']:g}</td><td>{s['compression_ratio']:g}x</td>"
                f"<td>{s['recall_at_k']:.3f}</td><td>{'yes' if s['needs_full_vectors'] else ''}</td></tr>"
                for s in rep.to_dict()["settings"])
            self.compress_page.value = (
                f"<b>Compression</b> ({rep.n_queries:,} held-out queries, recall@{rep.k} of exhaustive search over the "
                f"codes against exact search; full vectors {rep.full_bytes_per_vector:,} bytes)"
                "<table class='embgeo-nn embgeo-compression'><tr><th>method</th><th>setting</th><th>bytes</th>"
                f"<th>ratio</th><th>recall@{rep.k}</th><th>re-ranks with full vectors</th></tr>{rows}</table>")

        self._on_request(self.compress_page, "compression sweep", ("compression", c.metric, c.k, holdout), compute, show,
                         running="Compressing and searching...",
                         failure="The compression sweep could not be computed; see the message above.")

    def run_index_scaling(self) -> None:
        c = self.controller
        holdout = c.default_holdout()

        def compute():
            return index_scaling(c.data, k=c.k, metric=c.metric, holdout=holdout, kind="hnsw", random_state=0,
                                 progress=c.progress_between(5, 95, "index-size scaling...", say_steps=True))

        def show(rep):
            biggest = rep.sizes[-1]
            self.scaling_page.value = (
                f"<b>Index-size scaling</b> ({html.escape(rep.setting)} at every size, {holdout:,} held-out queries; "
                "nested random subsets)<table class='embgeo-nn embgeo-scaling'><tr><th>corpus size</th>"
                f"<th>recall@{c.k}</th><th>margin</th></tr>" + "".join(
                    f"<tr><td>{n:,}</td><td>{r:.3f}</td><td>{format_number(m)}</td></tr>"
                    for n, r, m in zip(rep.sizes, rep.recall_at_k, rep.margin)) + "</table>"
                f"<p class='embgeo-note'>Recall changes by <b>{format_number(rep.recall_slope_per_decade)}</b> per "
                f"tenfold growth; the trend puts it at <b>{rep.predicted_recall(10 * biggest):.3f}</b> at "
                f"{10 * biggest:,} rows (an extrapolation). {field_meaning(rep, 'margin')}</p>")
            self._scaling_box.layout.display = None
            F.redraw(self._figure_in(self._scaling_box), F.index_scaling_figure(rep, k=c.k))

        self._on_request(self.scaling_page, "index-size scaling", ("index_scaling", c.metric, c.k, holdout), compute,
                         show, running="Building HNSW on nested subsets of the corpus...",
                         failure="Index-size scaling could not be computed; see the message above.")
