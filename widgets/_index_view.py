"""The Index health tab: faiss indexes built on the data, swept, and scored against exact search.

A mixin of :class:`~.dashboard.Dashboard`; its three charts (recall against speed, against memory, and
by query difficulty) are FigureWidgets kept for the dashboard's life and redrawn for each run.
"""

from __future__ import annotations

import html

import ipywidgets as W

from . import _figures as F
from ._html import format_number, italic
from ._options import DEFAULT_INDEX_KINDS, INDEX_KIND_LABELS, INDEX_KINDS, INDEX_SWEEP

_PRESS_RUN = "Press Run to build the indexes and measure them."


class IndexView:
    """The Index health tab (see the module docstring)."""

    def _build_index_view(self) -> None:
        c, own = self.controller, self._own
        self.index_kinds = {kind: own(W.Checkbox(value=kind in DEFAULT_INDEX_KINDS,
                                                 description=INDEX_KIND_LABELS[kind], indent=False,
                                                 layout=W.Layout(width="auto")))
                            for kind in INDEX_KINDS}
        self.index_holdout = own(W.BoundedIntText(value=c.default_holdout(), min=1, max=max(1, c.data.n - 1),
                                                  description="held-out queries",
                                                  style={"description_width": "initial"},
                                                  layout=W.Layout(width="220px")))
        self.index_run = own(W.Button(description="Run", button_style="primary", icon="play",
                                      tooltip="Build the indexes and sweep their search settings"))
        self.index_run.on_click(lambda _: self.run_index_health())
        self.index_page = own(W.HTML(italic(_PRESS_RUN)))
        self.index_figures = {}  # pareto, memory, buckets: made at the first run, redrawn in place after
        self._chart_boxes = {name: own(W.Box()) for name in ("pareto", "memory", "buckets")}
        self.index_charts = own(W.HBox([self._chart_boxes["pareto"], self._chart_boxes["memory"]]))
        self.index_buckets = self._chart_boxes["buckets"]
        self.index_details = own(W.HTML(""))
        self.index_results = own(W.VBox([self.index_page, self.index_charts, self.index_buckets,
                                         self.index_details]))
        self._result_parts["Index health"] = (self.index_page, [self.index_charts, self.index_buckets,
                                                                self.index_details])
        sweep = "; ".join(f"{INDEX_KIND_LABELS[k].split(' (')[0]}: {', '.join(map(str, v))} "
                          f"({'efSearch' if 'efSearch' in INDEX_SWEEP[k] else 'nprobe'})"
                          for k, v in ((k, next(iter(INDEX_SWEEP[k].values()))) for k in INDEX_SWEEP))
        self.index_explain = own(W.HTML(""))
        self._index_sweep_text = sweep
        self.panels["Index health"].children = [
            own(W.HBox([*self.index_kinds.values(), self.index_holdout, self.index_run])), self.index_explain,
            self.index_results]

    def _layout_index(self) -> None:
        self.index_explain.value = (
            f"<p class='embgeo-note'>How well a faiss vector index finds the true {self.controller.k} nearest "
            "neighbours on this data. The held-out queries are random rows taken out of the corpus; exact search "
            "gives their true neighbours, then each index is built on the rest and searched at a few "
            f"search-effort settings ({html.escape(self._index_sweep_text)}). Building indexes takes a while on "
            "large sets, so nothing runs until you press Run.</p>")
        self._show_result_message("Index health", italic(_PRESS_RUN))

    def index_setting(self) -> tuple[tuple[str, ...], int]:
        """The index kinds ticked and the held-out query count."""
        return tuple(k for k, box in self.index_kinds.items() if box.value), int(self.index_holdout.value)

    def run_index_health(self) -> None:
        """Build the ticked index kinds and sweep them (worker thread, with progress)."""
        c = self.controller
        kinds, holdout = self.index_setting()
        self._submit("Index health", "index health (" + ", ".join(kinds) + ")",
                     lambda: c.index_health(kinds, holdout), self._show_index)

    def _show_index(self, rep) -> None:
        c = self.controller
        e = html.escape
        self.index_report = rep
        rows = c.index_rows(rep)
        for name, figure in (("pareto", F.pareto_figure(rows, k=rep.k)), ("memory", F.memory_figure(rows, k=rep.k))):
            self.index_figures[name] = F.redraw(self._figure_in(self._chart_boxes[name]), figure)
        body = "".join(
            f"<tr><td>{e(r['label'])}</td><td>{format_number(r['recall'])}</td><td>{r['qps']:,.0f}</td>"
            f"<td>{format_number(r['build_seconds'])}</td><td>{format_number(r['bytes_per_vector'])}</td>"
            f"<td>{'yes' if r['pareto'] else ''}</td></tr>" for r in rows)
        self.index_page.value = (
            f"<b>Every setting</b> ({rep.n_queries:,} queries, {rep.query_source}, {rep.metric}, k = {rep.k}; "
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
        diff = rep.difficulty
        if diff is None:
            parts.append("<p class='embgeo-note'>Query difficulty needs distances; it is not defined for the dot "
                         "product. Switch the metric to cosine or euclidean to see recall by difficulty.</p>")
        else:
            self.index_figures["buckets"] = F.redraw(self._figure_in(self.index_buckets),
                                                     F.bucket_figure(diff.recall_by_bucket, k=rep.k))
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
        self.index_details.value = "".join(parts)
        self._show_results("Index health")
        self.index_buckets.layout.display = "none" if diff is None else None
