"""The Index health tab: faiss indexes built on the data, swept, and scored against exact search.

A mixin of :class:`~.dashboard.Dashboard`; its three charts (recall against speed, against memory, and
by query difficulty) are FigureWidgets kept for the dashboard's life and redrawn for each run. When the
set was read from a vector database URI, a live-index panel measures the database's *own* search
(:func:`embgeo.analysis.live_index_report`: recall@k by distance and by id, latency, QPS, recall by
difficulty) beside the faiss sweep's numbers, once both have run.
"""

from __future__ import annotations

import html

import ipywidgets as W

from . import _figures as F
from ._html import format_number, italic
from ._options import DEFAULT_INDEX_KINDS, INDEX_KIND_LABELS, INDEX_KINDS, INDEX_SWEEP, LIVE_QUERIES

#: The two charts of a sweep share their row: recall against speed, and against memory.
_CHART_SHARES = {"pareto": 0.55, "memory": 0.45}
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
        self._build_live_panel()
        self.panels["Index health"].children = [
            own(W.HBox([*self.index_kinds.values(), self.index_holdout, self.index_run])), self.index_explain,
            self.index_results, self.live_box]

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
            self.index_figures[name] = F.redraw(self._figure_in(self._chart_boxes[name], share=_CHART_SHARES[name]), figure)
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
        if getattr(self, "live_report", None) is not None:  # the database's numbers beside the new sweep
            self._show_live(self.live_report)
        self._show_results("Index health")
        self.index_buckets.layout.display = "none" if diff is None else None

    # ------------------------------------------------------------------------------ the live index
    def _build_live_panel(self) -> None:
        c, own = self.controller, self._own
        source = c.live_source()
        self.live_report = None
        self.live_queries = own(W.BoundedIntText(value=min(LIVE_QUERIES, c.data.n - 1), min=1, max=max(1, c.data.n - 1),
                                                 description="queries", style={"description_width": "initial"},
                                                 layout=W.Layout(width="160px")))
        self.live_run = own(W.Button(description="Measure the database", icon="database", button_style="info",
                                     layout=W.Layout(width="220px"),
                                     tooltip="Send held-out rows to the database's own search and score its answers"))
        self.live_run.on_click(lambda _: self.run_live_index())
        self.live_page = own(W.HTML(""))
        note = ("" if source is None else
                f"<p class='embgeo-note'><b>Live index</b>: this set was read from <code>{html.escape(source)}</code>. "
                "Measure sends held-out rows of the collection, one query at a time, to the database's own search "
                "(its current settings; nothing is written) and scores its answers against exact search over the "
                f"same vectors with the collection's distance (Aumueller et al., 2020).</p>")
        self.live_box = own(W.VBox([own(W.HTML(note)), own(W.HBox([self.live_queries, self.live_run])),
                                    self.live_page]))
        self.live_box.layout.display = None if source is not None else "none"

    def run_live_index(self) -> None:
        """Measure the source database's search (worker thread, with progress; cancel stops between queries)."""
        c, n = self.controller, int(self.live_queries.value)
        self.live_page.value = italic(f"Measuring the database's search on {n:,} held-out rows...")

        def failed():
            self.live_page.value = italic("This could not be measured; see the message above (or it was cancelled).")
        c.submit(f"live index ({c.live_source()})", lambda: c.live_index(n), self._show_live, failed)

    def _show_live(self, rep) -> None:
        e, f = html.escape, format_number
        self.live_report = rep
        rows = [(f"{rep.database} (its current settings)", rep.recall_at_k, rep.recall_at_k_ids, rep.qps,
                 f"{f(rep.latency_ms_p50)} / {f(rep.latency_ms_p95)} / {f(rep.latency_ms_p99)}")]
        faiss = getattr(self, "index_report", None)
        if faiss is not None:
            rows += [(f"embgeo faiss: {s.label}", s.recall_distance_rule, s.recall_at_k, s.qps, "")
                     for s in faiss.indexes]
        body = "".join(f"<tr><td>{e(r[0])}</td><td>{f(r[1])}</td><td>{f(r[2])}</td><td>{r[3]:,.0f}</td>"
                       f"<td>{r[4]}</td></tr>" for r in rows)
        settings = ", ".join(f"{e(str(k))} = {e(str(v))}" for k, v in rep.settings.items()) or "none reported"
        beside = (f"The faiss rows are Index health's own sweep above ({faiss.n_queries:,} held-out rows, "
                  f"{e(faiss.metric)}, k = {faiss.k}): other queries, so compare them as settings, not row by row."
                  if faiss is not None else "Press Run above to put embgeo's faiss sweep on this data beside it.")
        parts = [f"<b>Live index</b>: {e(rep.source)} ({rep.n:,} vectors, {rep.n_queries:,} queries, {e(rep.query_source)}, "
                 f"{e(rep.metric)}, k = {rep.k}; exact search took {rep.exact_seconds:.2f} s, over "
                 f"{'the collection read again' if rep.vectors_from == 'read' else e(rep.vectors_from)})"
                 f"<table class='embgeo-nn embgeo-live'><tr><th>search</th><th>recall@{rep.k} (distance)</th>"
                 f"<th>recall@{rep.k} (ids)</th><th>QPS (1 client)</th><th>latency ms p50 / p95 / p99</th></tr>"
                 f"{body}</table>",
                 f"<p class='embgeo-note'>Database settings: {settings}. Worst query's recall {f(rep.recall_min)}; "
                 f"{rep.never_returned_rate:.1%} of the collection is in no answer. Recall by distance counts an "
                 "answer within the exact k-th distance (x 1.001) as a hit, so tied copies are not misses; by ids is "
                 f"the set overlap. {beside}</p>"]
        diff = rep.difficulty
        if diff is not None and diff.recall_by_bucket:
            cells = "".join(f"<tr><td>{f(b['lid_low'])}-{f(b['lid_high'])}</td><td>{b['n_queries']}</td>"
                            f"<td>{f(b['recall'][rep.database])}</td></tr>" for b in diff.recall_by_bucket)
            parts.append("<b>Recall by query difficulty</b> (local-ID quantile, easy to hard; Aumueller &amp; "
                         "Ceccarello, 2021)<table class='embgeo-nn embgeo-live-buckets'><tr><th>local ID</th>"
                         f"<th>queries</th><th>recall@{rep.k}</th></tr>{cells}</table>")
        self.live_page.value = "".join(parts)
