"""The Shift tab: a query set against this set (the corpus), how far apart the two clouds sit.

A mixin of :class:`~.dashboard.Dashboard`. The queries are a bundled sample, an uploaded file, or an
array given with :meth:`ShiftView.set_shift_queries`; pressing Run computes
:func:`embgeo.analysis.shift_report` in the worker thread and shows its verdict cards, the headline
numbers, the shift after each transform, the two clouds in one PCA map coloured by set, and the
neighbour margin (and an index's recall, when the report has one) by shift bucket.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, Moments, datasets, shift_report, verdicts_html

from . import _figures as F
from ._html import format_number, italic
from ._upload import CheckedUpload, load_upload, max_upload_bytes

_PRESS_RUN = "Choose the queries and press Run."
#: File types the queries upload reads (a query file is often an .npz of several arrays).
QUERY_TYPES = (".npy", ".npz", ".parquet", ".csv")
#: Rows of each set drawn into the PCA map.
MAP_POINTS = 2000
#: Rows of each set for the MMD and classifier tests (the report's sample_size), and permutations.
SAMPLE_SIZE, PERMUTATIONS = 500, 100
#: The headline numbers shown in the table, with what each says.
HEADLINE = (("centroid_gap", "distance between the two means"),
            ("centroid_gap_in_spreads", "that gap in units of the corpus's RMS spread"),
            ("mean_cosine_between_means", "cosine between the two mean vectors"),
            ("modality_gap", "gap between the centres of the L2-normalised sets (Liang et al., 2022)"),
            ("bures_wasserstein", "2-Wasserstein distance of Gaussians fitted to each set"),
            ("total_variance_ratio", "spread of the queries over that of the corpus"),
            ("mmd_rbf", "Gaussian-kernel MMD^2 on the samples (Gretton et al., 2012)"),
            ("mmd_p_value", "its permutation p-value (below 0.05: the sets differ)"),
            ("classifier_auc", "held-out AUC telling queries from corpus (0.5 = indistinguishable)"),
            ("knn_ood_rate", "queries farther from their k-th neighbour than 95% of corpus items"),
            ("mahalanobis_ood_rate", "the same by Mahalanobis distance under the corpus covariance"))


class ShiftView:
    """The Shift tab (see the module docstring)."""

    def _build_shift_view(self) -> None:
        own = self._own
        self._shift_given: dict[str, EmbeddingSet] = {}
        self.shift_choice = own(W.Dropdown(options=self._shift_options(), description="queries",
                                           layout=W.Layout(width="360px")))
        self.shift_upload = own(CheckedUpload(self.upload_shift_queries, self._shift_upload_failed,
                                              accept=",".join(QUERY_TYPES), max_bytes=max_upload_bytes(),
                                              description="Upload queries"))
        self.shift_run = own(W.Button(description="Run", button_style="primary", icon="play",
                                      tooltip="Compare the queries with this set"))
        self.shift_run.on_click(lambda _: self.run_shift())
        self.shift_page = own(W.HTML(italic(_PRESS_RUN)))
        self._shift_boxes = {name: own(W.Box()) for name in ("map", "buckets")}
        self.shift_charts = own(W.HBox([self._shift_boxes["map"], self._shift_boxes["buckets"]]))
        self.shift_results = own(W.VBox([self.shift_page, self.shift_charts]))
        self._result_parts["Shift"] = (self.shift_page, [self.shift_charts])
        explain = ("<p class='embgeo-note'>This set is the corpus; the queries are a second set of the same "
                   "dimension, embedded with the same model: a bundled sample, an uploaded file, or an array given "
                   "with <code>dashboard.set_shift_queries(vectors)</code>. The report tells how far apart the two "
                   "clouds sit (centroid and modality gap, covariance difference), whether they could come from one "
                   "distribution (MMD and a classifier, on samples of "
                   f"{SAMPLE_SIZE} rows), which queries are out of distribution, and what centring or whitening "
                   "does to the gap.</p>")
        self.panels["Shift"].children = [own(W.HBox([self.shift_choice, self.shift_upload, self.shift_run])),
                                         own(W.HTML(explain)), self.shift_results]

    def _layout_shift(self) -> None:
        self._show_result_message("Shift", italic(_PRESS_RUN))

    def _shift_options(self) -> list[tuple[str, tuple]]:
        given = [(f"given: {name}", ("given", name)) for name in getattr(self, "_shift_given", {})]
        samples = [(f"bundled sample: {name}", ("sample", name)) for name in datasets.list_samples(installed=True)]
        return given + samples

    def set_shift_queries(self, queries, name: str = "queries") -> None:
        """Offer ``queries`` (an EmbeddingSet or an (m, d) array) in the Shift tab, and choose them."""
        es = queries if isinstance(queries, EmbeddingSet) else EmbeddingSet(queries, name=name)
        self._shift_given[es.name] = es
        self.shift_choice.options = self._shift_options()
        self.shift_choice.value = ("given", es.name)

    def upload_shift_queries(self, filename: str, content: bytes) -> None:
        """Read uploaded query bytes (size limit, clear errors) and offer them as the queries."""
        try:
            es = load_upload(filename, content, types=QUERY_TYPES)
        except EmbeddingInputError as exc:
            self._shift_upload_failed(exc)
            return
        self.set_shift_queries(es)

    def _shift_upload_failed(self, exc: EmbeddingInputError) -> None:
        self.error.value = f"<div class='embgeo-error'>{html.escape(str(exc))}</div>"

    def _shift_queries(self) -> EmbeddingSet:
        kind, name = self.shift_choice.value
        return self._shift_given[name] if kind == "given" else datasets.load_sample(name)

    def run_shift(self) -> None:
        """Compute the shift report of the chosen queries against this set (worker thread, with progress)."""
        c = self.controller
        if self.shift_choice.value is None:
            self._show_result_message("Shift", italic(_PRESS_RUN))
            return

        def compute():
            queries = self._shift_queries()
            return queries, shift_report(c.data, queries, metric=c.metric, k=c.k, sample_size=SAMPLE_SIZE,
                                         n_permutations=PERMUTATIONS,
                                         progress=c.progress_between(5, 95, "shift report..."))

        self._submit("Shift", "shift report", compute, self._show_shift)

    def _show_shift(self, result) -> None:
        queries, report = result
        e = html.escape
        self.shift_report = report
        d = report.to_dict()
        rows = "".join(f"<tr><td>{e(name)}</td><td>{format_number(d[name])}</td><td class='embgeo-note'>"
                       f"{e(meaning)}</td></tr>" for name, meaning in HEADLINE)
        transforms = "".join(
            f"<tr><td>{e(t['transform'])}</td><td>{format_number(t['centroid_gap_in_spreads'])}</td>"
            f"<td>{format_number(t['modality_gap'])}</td><td>{format_number(t['classifier_auc'])}</td>"
            f"<td>{format_number(t['mmd_rbf'])}</td><td>{format_number(t.get('overlap_at_k'))}</td></tr>"
            for t in report.transforms)
        hardest = "".join(f"<li>{e(h['text'] or h['label'] or '#' + str(h['query']))} "
                          f"<span class='embgeo-note'>({h['knn_distance']:.3g})</span></li>"
                          for h in report.hardest[:8])
        notes = "".join(f"<div class='embgeo-warning'>{e(n)}</div>" for n in report.notes)
        self.shift_page.value = (
            f"<p><b>{e(report.name_queries)}</b> ({report.n_queries:,}) against <b>{e(report.name_corpus)}</b> "
            f"({report.n_corpus:,}), {report.metric}, k = {report.k}.</p>{notes}"
            + verdicts_html(report.verdicts, style=False)
            + f"<table class='embgeo-nn'><tr><th>statistic</th><th>value</th><th>meaning</th></tr>{rows}</table>"
            + (f"<p><b>After each transform</b> (fitted as named, applied to both sets)</p><table class='embgeo-nn'>"
               f"<tr><th>transform</th><th>gap (spreads)</th><th>modality gap</th><th>classifier AUC</th>"
               f"<th>MMD^2 (own bandwidth)</th><th title='share of each query&#39;s exact top-{report.k} that is "
               f"also its raw top-{report.k}, on the {report.sample_size['queries']:,} sampled queries'>"
               f"overlap@{report.k} with raw</th></tr>"
               f"{transforms}</table>" if transforms else "")
            + f"<p><b>Hardest queries</b> (distance to the {report.k}-th corpus neighbour)</p><ul>{hardest}</ul>")
        F.redraw(self._figure_in(self._shift_boxes["map"], share=0.5), shift_map_figure(self.controller.data, queries,
                                                                            report.metric))
        F.redraw(self._figure_in(self._shift_boxes["buckets"], share=0.5), shift_bucket_figure(report.by_bucket, k=report.k))
        self._show_results("Shift")


def shift_map_figure(corpus: EmbeddingSet, queries: EmbeddingSet, metric: str, *, points: int = MAP_POINTS,
                     random_state=0) -> go.Figure:
    """Both sets in one PCA map (the principal axes of the pooled sample; unit rows under cosine),
    at most ``points`` rows of each, coloured by set."""
    rng = np.random.default_rng(random_state)
    parts = []
    for es in (corpus, queries):
        rows = np.sort(rng.choice(es.n, size=min(points, es.n), replace=False))
        x = np.asarray(es.vectors[rows], dtype=np.float64)
        if metric == "cosine":
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        parts.append((es, rows, x))
    pooled = Moments(corpus.dim).update(np.vstack([x for _, _, x in parts]))
    mean = pooled.mean
    axes = pooled.principal_axes(n_components=min(2, corpus.dim))[1]
    fig = go.Figure(layout=go.Layout(template="plotly_white", height=480, width=560, margin=dict(l=40, r=10, t=40, b=40),
                                     title="The two sets in one PCA map", xaxis_title="PC 1", yaxis_title="PC 2"))
    for (es, rows, x), label, colour in zip(parts, ("corpus", "queries"), ("#4C78A8", "#F58518")):
        xy = np.ascontiguousarray((x - mean) @ axes, dtype=np.float32)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name=f"{label}: {es.name}",
                                   marker=dict(size=4, color=colour, opacity=0.5),
                                   hovertext=[es.label(int(i)) for i in rows], hoverinfo="text"))
    return fig


def shift_bucket_figure(buckets: list[dict], *, k: int) -> go.Figure:
    """The median margin D_{k+1} - D_k per Mahalanobis bucket (near to far), and an index's recall@k
    per bucket when the report has one."""
    names = [f"{b['mahalanobis_low']:.3g} to {b['mahalanobis_high']:.3g}" for b in buckets]
    fig = go.Figure(layout=go.Layout(template="plotly_white", height=480, width=520, margin=dict(l=40, r=10, t=40, b=80),
                                     title=f"By shift bucket: the margin D{k + 1} - D{k}",
                                     xaxis_title="Mahalanobis distance of the queries (near to far)",
                                     yaxis_title="median margin"))
    fig.add_trace(go.Bar(x=names, y=np.array([b["margin_median"] or 0.0 for b in buckets], dtype=np.float32),
                         name="margin", marker_color="#54A24B"))
    for key in [key for key in (buckets[0] if buckets else {}) if key.startswith("recall ")]:
        fig.add_trace(go.Scatter(x=names, y=np.array([b[key] for b in buckets], dtype=np.float32), name=key,
                                 mode="lines+markers", yaxis="y2"))
        fig.update_layout(yaxis2=dict(title=f"recall@{k}", overlaying="y", side="right", range=[0, 1]))
    return fig
