"""plotly figures for the dashboard: builders that return a plain ``go.Figure``, and :func:`redraw`,
which shows one in a panel's own ``FigureWidget``.

Each panel owns its FigureWidgets for the dashboard's whole life and every update replaces their
traces and layout in place, inside ``batch_update()`` (one message, one redraw), so a long session
does not pile up widgets the kernel keeps registered. Numeric arrays go to plotly as float32 NumPy
arrays (sent as binary buffers, not JSON lists).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._options import OTHER_CATEGORY

_LAYOUT = dict(template="plotly_white", margin=dict(l=40, r=10, t=40, b=40), height=520)
_QUALITATIVE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6",
                "#9D755D", "#BAB0AC", "#1F77B4", "#2CA02C")
_OTHER_GREY = "#BAB0AC"


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class FigureWidget(go.FigureWidget):
    """plotly's FigureWidget with its front-end module held as text rather than as a watched file.

    anywidget turns a file-path ``_esm`` into a ``FileContents`` whose ``changed`` signal keeps a closure
    over every widget instance ever made, so no FigureWidget is ever freed, closed or not (anywidget
    issue #929). The module's text is not a path, so it stays a string, and a closed figure is freed.
    """

    _esm = str(go.FigureWidget._esm)
    #: The width (pixels) fitted to the page (see :func:`fit_width`); None: the figure's own.
    _fit_width = None


def new_widget(**layout) -> FigureWidget:
    """An empty FigureWidget for a panel to keep and :func:`redraw` into."""
    return FigureWidget(layout=go.Layout(**{**_LAYOUT, **layout}))


def redraw(widget: go.FigureWidget, figure: go.Figure) -> go.FigureWidget:
    """Show ``figure`` in ``widget``: its traces and layout replace the old ones in one update (at the
    width fitted to the page, when there is one)."""
    with widget.batch_update():
        widget.data = []
        widget.layout = figure.layout
        if getattr(widget, "_fit_width", None):
            widget.layout.width = widget._fit_width
        widget.add_traces(list(figure.data))
    return widget


def fit_width(widget: FigureWidget, width: int) -> None:
    """Give ``widget`` ``width`` pixels, now and at every later :func:`redraw`.

    plotly's FigureWidget, an anywidget since plotly 6, draws once at the size its layout says (700 px
    when it says none: its element has no width yet when it first draws) and never follows its
    container, so the dashboard sizes each figure from the page's width (see ``Dashboard.fit_figures``).
    """
    widget._fit_width = int(width)
    if widget.layout.width != widget._fit_width:
        widget.layout.width = widget._fit_width


def scatter_figure(coords: np.ndarray, hover: np.ndarray, *, density_xy: np.ndarray | None = None,
                   density_bins: int = 150, title: str = "", width: int | None = None,
                   height: int | None = None) -> go.Figure:
    """Projected points (Scattergl in 2-D, Scatter3d in 3-D); ``density_xy`` adds a density layer under them:
    a ``density_bins`` x ``density_bins`` heatmap of log(1 + points per bin), binned on the server.

    ``width`` and ``height`` (pixels) size a figure that shares a row with another one.
    """
    coords = _f32(coords)
    size = {key: v for key, v in (("width", width), ("height", height)) if v is not None}
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, **size}, title=title, dragmode="lasso", showlegend=False))
    if coords.shape[1] == 3:
        fig.add_trace(go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], mode="markers",
                                   marker=dict(size=2, color="#4C78A8", opacity=0.7), hovertext=hover,
                                   hoverinfo="text", name="points"))
        return fig
    if density_xy is not None:  # binned here: the browser gets a bins x bins grid, not n points
        counts, x_edges, y_edges = np.histogram2d(density_xy[:, 0], density_xy[:, 1], bins=density_bins)
        fig.add_trace(go.Heatmap(z=_f32(np.log1p(counts.T)), x=_f32(0.5 * (x_edges[1:] + x_edges[:-1])),
                                 y=_f32(0.5 * (y_edges[1:] + y_edges[:-1])), colorscale="Greys", showscale=False,
                                 hoverinfo="skip", zsmooth="best", name="density"))
    fig.add_trace(go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers",
                               marker=dict(size=4, color="#4C78A8", opacity=0.75), hovertext=hover,
                               hoverinfo="text", name="points"))
    return fig


def points_trace(fig: go.FigureWidget):
    """The trace holding the points (the last one; a density layer sits under it)."""
    return fig.data[-1]


def set_marker_colors(fig: go.FigureWidget, values, kind: str, label) -> None:
    """Colour the points by numeric values (colour bar) or category codes (named palette)."""
    trace = points_trace(fig)
    with fig.batch_update():
        if kind == "none" or values is None:
            trace.marker.color = "#4C78A8"
            trace.marker.showscale = False
            return
        values = _f32(values)
        if kind == "categorical":
            n = max(len(label), 1)
            named = [c for c in _QUALITATIVE if c != _OTHER_GREY]
            palette = [named[i % len(named)] for i in range(n)]
            if label and str(label[-1]).startswith(OTHER_CATEGORY + " ("):  # the lumped rest: grey
                palette[-1] = _OTHER_GREY
            # a stepped colour scale so code i maps to palette[i]
            scale = []
            for i, c in enumerate(palette):
                scale += [[i / n, c], [(i + 1) / n, c]]
            trace.marker.update(color=values, colorscale=scale, cmin=-0.5, cmax=n - 0.5, showscale=True,
                                colorbar=dict(title="", tickvals=np.arange(n, dtype=np.float32),
                                              ticktext=list(label)))
        else:
            trace.marker.update(color=values, colorscale="Viridis", showscale=True,
                                cmin=float(np.nanmin(values)), cmax=float(np.nanmax(values)),
                                colorbar=dict(title=str(label)))


def highlight_points(fig: go.FigureWidget, main, other=()) -> None:
    """Enlarge points (by trace position): ``main`` (a clicked or found item) four times, ``other`` (its
    neighbours, text matches) two and a half times, so they stand out without losing their colour."""
    trace = points_trace(fig)
    n = len(trace.x)
    base = 2 if isinstance(trace, go.Scatter3d) else 4
    sizes = np.full(n, base, np.float32)
    outline = np.zeros(n, np.float32)  # a dark ring, so marked points stand out whatever their colour
    for positions, scale in ((other, 2.5), (main, 4.0)):
        positions = np.asarray([p for p in positions if 0 <= p < n], dtype=np.int64)
        sizes[positions], outline[positions] = base * scale, 1.5
    with fig.batch_update():
        trace.marker.size = sizes
        trace.marker.line = {"width": outline, "color": "#222222"}


def spectrum_figure(eigenvalues: np.ndarray, explained_ratio: np.ndarray, dim_means: np.ndarray,
                    rogue: list[int], *, alpha: float | None = None,
                    dim_std: np.ndarray | None = None) -> go.Figure:
    """Log-log eigenspectrum, cumulative explained variance, and per-dimension mean with rogue dims in red.

    ``dim_std`` draws each dimension's spread (one standard deviation) as an error bar on its mean.
    """
    ev = _f32(eigenvalues)
    ranks = np.arange(1, len(ev) + 1, dtype=np.float32)
    # numerically zero eigenvalues (e.g. the one lost to centring) would stretch the log axis to 1e-18
    keep = ev > max(float(ev.max(initial=0.0)), np.finfo(np.float32).tiny) * 1e-9
    fig = go.Figure(make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        "Eigenspectrum" + (f" (alpha = {alpha:.2f})" if alpha is not None and np.isfinite(alpha) else ""),
        "Cumulative explained variance",
        # two short lines: one outgrew its third of a notebook's width
        "Mean per dimension" + (" ± 1 std" if dim_std is not None else "") + "<br>(rogue in red)")))
    fig.update_annotations(font_size=13)  # the subplot titles, within a third of a 700 px figure
    fig.add_trace(go.Scatter(x=ranks[keep], y=ev[keep], mode="lines", name="eigenvalue"), row=1, col=1)
    cum = _f32(np.cumsum(explained_ratio))
    fig.add_trace(go.Scatter(x=ranks[: len(cum)], y=cum, mode="lines", name="cumulative"), row=1, col=2)
    for level in (0.9, 0.95, 0.99):
        fig.add_hline(y=level, line=dict(dash="dot", width=1, color="grey"), row=1, col=2)
    means = _f32(dim_means)
    colors = np.array(["#4C78A8"] * len(means), dtype=object)
    colors[list(rogue)] = "#E45756"
    spread = None if dim_std is None else dict(type="data", array=_f32(dim_std), thickness=0.6, width=0,
                                               color="#888")
    fig.add_trace(go.Bar(x=np.arange(len(means), dtype=np.float32), y=means, marker_color=colors,
                         marker_line_width=0, name="mean", error_y=spread), row=1, col=3)
    fig.update_xaxes(type="log", title_text="rank", row=1, col=1)
    fig.update_yaxes(type="log", title_text="variance", row=1, col=1)
    fig.update_xaxes(title_text="components", row=1, col=2)
    fig.update_xaxes(title_text="dimension", row=1, col=3)
    fig.update_layout(**{**_LAYOUT, "height": 400, "width": 1150}, showlegend=False, bargap=0)
    return fig


def histogram_figure(values: np.ndarray, *, title: str, xlabel: str, log_y: bool = False,
                     marker: float | None = None, marker_label: str = "") -> go.Figure:
    """A histogram of per-point values (local ID, k-occurrence), with an optional reference line."""
    v = _f32(values)
    v = v[np.isfinite(v)]
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, "height": 360}, title=title, showlegend=False))
    fig.add_trace(go.Histogram(x=v, nbinsx=80, marker_color="#4C78A8"))
    if marker is not None and np.isfinite(marker):
        fig.add_vline(x=float(marker), line=dict(color="#E45756", dash="dash"),
                      annotation_text=marker_label, annotation_position="top right")
    fig.update_xaxes(title_text=xlabel)
    fig.update_yaxes(title_text="points", type="log" if log_y else "linear")
    return fig


def scale_figure(curves: dict[str, tuple], *, title: str, xlabel: str,
                 errors: dict[str, np.ndarray] | None = None,
                 hover: dict[str, list[str]] | None = None) -> go.Figure:
    """Estimates across neighbourhood scales: ``curves`` maps a name to (x values, estimates).

    ``errors`` adds error bars to the named curves and ``hover`` a text per point (e.g. the subsample
    size or neighbour rank behind each scale).
    """
    errors, hover = errors or {}, hover or {}
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, "height": 360}, title=title))
    for name, (xs, y) in curves.items():
        err = errors.get(name)
        bars = None
        if err is not None and np.isfinite(err).any():
            bars = dict(type="data", array=_f32(np.nan_to_num(err, nan=0.0)), visible=True)
        fig.add_trace(go.Scatter(x=_f32(xs), y=_f32(y), mode="lines+markers", name=name, error_y=bars,
                                 hovertext=hover.get(name), hoverinfo="text+y" if name in hover else None))
    fig.update_xaxes(title_text=xlabel, type="log")
    fig.update_yaxes(title_text="dimension")
    # the legend under the plot: to its right it took the plot's width and was clipped in Voila
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
                      height=420, margin=dict(l=40, r=10, t=40, b=90))
    return fig


def before_after_scatter(before: np.ndarray, after: np.ndarray, hover: np.ndarray, *, titles: tuple[str, str],
                         width: int = 560) -> tuple[go.Figure, go.Figure]:
    """Two 2-D projections of the same points, before and after a change, drawn at the same size."""
    return (scatter_figure(before, hover, title=titles[0], width=width, height=460),
            scatter_figure(after, hover, title=titles[1], width=width, height=460))


def _by_kind(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["kind"], []).append(r)
    return groups


def pareto_figure(rows: list[dict], *, k: int) -> go.Figure:
    """Recall@k against single-thread QPS, one trace per index kind, the Pareto frontier as a step line.

    ``rows`` are dicts with ``kind``, ``label``, ``recall``, ``qps`` and ``pareto`` (one per setting,
    in sweep order, so each kind's line runs from least to most search effort).
    """
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, "height": 420, "width": 620},
                                           title=f"Recall@{k} against queries per second (one thread)"))
    for i, (kind, group) in enumerate(_by_kind(rows).items()):
        fig.add_trace(go.Scatter(x=_f32([r["qps"] for r in group]), y=_f32([r["recall"] for r in group]),
                                 mode="lines+markers", name=kind, marker=dict(size=8, color=_QUALITATIVE[i]),
                                 hovertext=[r["label"] for r in group], hoverinfo="text+x+y"))
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["recall"])
    if front:
        fig.add_trace(go.Scatter(x=_f32([r["qps"] for r in front]), y=_f32([r["recall"] for r in front]),
                                 mode="lines", line=dict(color="grey", dash="dot", shape="hv"),
                                 name="Pareto frontier", hoverinfo="skip"))
    fig.update_xaxes(title_text="queries per second (log)", type="log")
    fig.update_yaxes(title_text=f"recall@{k}")
    return fig


def memory_figure(rows: list[dict], *, k: int) -> go.Figure:
    """Recall@k against index bytes per vector (serialised size / n), one trace per index kind."""
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, "height": 420, "width": 520},
                                           title=f"Recall@{k} against memory"))
    for i, (kind, group) in enumerate(_by_kind(rows).items()):
        fig.add_trace(go.Scatter(x=_f32([r["bytes_per_vector"] for r in group]),
                                 y=_f32([r["recall"] for r in group]), mode="markers", name=kind,
                                 marker=dict(size=9, color=_QUALITATIVE[i]),
                                 hovertext=[r["label"] for r in group], hoverinfo="text+x+y"))
    fig.update_xaxes(title_text="bytes per vector")
    fig.update_yaxes(title_text=f"recall@{k}")
    return fig


def bucket_figure(buckets: list[dict], *, k: int) -> go.Figure:
    """Recall@k per query-difficulty bucket (local-ID quantiles, easy to hard), one bar per index setting.

    ``buckets`` are the ``recall_by_bucket`` entries of a query-difficulty report.
    """
    names = [f"LID {b['lid_low']:.1f}-{b['lid_high']:.1f} ({b['n_queries']} q)" for b in buckets]
    settings = list(buckets[0]["recall"]) if buckets else []
    fig = go.Figure(layout=go.Layout(**{**_LAYOUT, "height": 420}, barmode="group",
                                           title=f"Recall@{k} by query difficulty (local ID quantile, easy to hard)"))
    for setting in settings:
        y = np.array([np.nan if b["recall"][setting] is None else b["recall"][setting] for b in buckets],
                     dtype=np.float32)
        fig.add_trace(go.Bar(x=names, y=y, name=setting))
    fig.update_yaxes(title_text=f"recall@{k}", range=[0, 1.02])
    fig.update_xaxes(title_text="query bucket")
    return fig


def index_scaling_figure(rep, *, k: int) -> go.Figure:
    """Recall@k of one fixed index setting (left axis) and the true-neighbour margin (right axis) against
    the corpus size on a log axis, with the fitted recall line and its value at ten times the largest size.

    ``rep`` is an :class:`~embgeo.analysis.IndexScaling`.
    """
    sizes = np.asarray(rep.sizes, dtype=np.float64)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=_f32(sizes), y=_f32(rep.recall_at_k), mode="lines+markers", name=f"recall@{k}",
                             marker=dict(size=8, color=_QUALITATIVE[0])), secondary_y=False)
    ahead = np.array([sizes[0], sizes[-1] * 10])
    fig.add_trace(go.Scatter(x=_f32(ahead), y=_f32([rep.predicted_recall(v) for v in ahead]), mode="lines",
                             name="fitted trend", line=dict(color=_QUALITATIVE[0], dash="dot")), secondary_y=False)
    fig.add_trace(go.Scatter(x=_f32(sizes), y=_f32(rep.margin), mode="lines+markers", name="neighbour margin",
                             marker=dict(size=8, color=_QUALITATIVE[1])), secondary_y=True)
    fig.update_layout(**{**_LAYOUT, "height": 380, "margin": dict(l=50, r=50, t=40, b=90)},
                      title=f"{rep.setting}: recall and margin as the corpus grows",
                      legend=dict(orientation="h", yanchor="top", y=-0.25, xanchor="left", x=0))
    fig.update_xaxes(title_text="corpus size (log)", type="log")
    fig.update_yaxes(title_text=f"recall@{k}", secondary_y=False)
    fig.update_yaxes(title_text="margin D_k+1 - D_k", secondary_y=True)
    return fig
