"""The geometry report as one standalone HTML page: verdict cards, plotly charts and the tables of every
part, with plotly.js embedded inline so the file opens offline."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .._core import stylesheet
from .verdicts import verdicts_html


def report_page(report, path=None) -> str:
    """The page of a :class:`~.geometry_report.GeometryReport` (written to ``path`` when given)."""
    from plotly.offline import get_plotlyjs

    figures = "".join(
        f"<div class='embgeo-chart'>{fig.to_html(full_html=False, include_plotlyjs=False)}</div>"
        for fig in _figures(report)
    )
    title = html.escape(f"embgeo geometry report: {report.name}")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><script type='text/javascript'>{get_plotlyjs()}</script>"
        f"<style>{stylesheet()}</style>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        ".embgeo-chart{display:inline-block;width:580px;vertical-align:top}</style>"
        f"</head><body><h1>{title}</h1><h2>Verdicts</h2>{verdicts_html(report.verdicts(), style=False)}"
        f"<h2>Charts</h2>{figures}<h2>Every number</h2>{report._repr_html_()}</body></html>"
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def _figures(report) -> list:
    """plotly figures of the report's distributions (plotly imported here only)."""
    import plotly.graph_objects as go

    def layout(fig, title, x, y, **kw):
        fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, width=560, height=380,
                          margin=dict(l=60, r=20, t=50, b=50), **kw)
        return fig

    figs = []
    iso = report.isotropy
    eig = np.asarray(iso.eigenvalues, dtype=np.float64)
    pos = eig > 0
    ranks = np.arange(1, len(eig) + 1)
    figs.append(layout(go.Figure(go.Scatter(x=ranks[pos], y=eig[pos], mode="lines+markers")),
                       "Covariance eigenspectrum", "rank", "eigenvalue", xaxis_type="log", yaxis_type="log"))
    cum = np.cumsum(np.asarray(iso.explained_variance_ratio, dtype=np.float64))
    figs.append(layout(go.Figure(go.Scatter(x=ranks, y=cum, mode="lines")),
                       "Cumulative explained variance", "principal components", "share of variance",
                       yaxis_range=[0, 1.02]))
    n_k = np.asarray(report.hubness.k_occurrence)
    counts = np.bincount(n_k)
    figs.append(layout(go.Figure(go.Bar(x=np.arange(len(counts)), y=counts)),
                       f"k-occurrence N_{report.hubness.k} (hubs on the right)", "N_k", "points",
                       yaxis_type="log"))
    if report.intrinsic_dimension is not None:
        lid = np.asarray(report.intrinsic_dimension.lid, dtype=np.float64)
        figs.append(layout(go.Figure(go.Histogram(x=lid[np.isfinite(lid)], nbinsx=50)),
                           "Local intrinsic dimension", "local ID", "points"))
    sim = report.similarity
    if sim is not None:
        centres = 0.5 * (sim.bin_edges[1:] + sim.bin_edges[:-1])
        fig = go.Figure([
            go.Bar(x=centres, y=sim.random_counts / max(1, sim.random_counts.sum()), name="random pairs",
                   opacity=0.6),
            go.Bar(x=centres, y=sim.kth_neighbor_counts / max(1, sim.kth_neighbor_counts.sum()),
                   name=f"{sim.k}-th neighbour", opacity=0.6),
        ])
        figs.append(layout(fig, "Cosine similarity distributions", "cosine", "share", barmode="overlay"))
    return figs
