"""The Layers tab: the geometry of every hidden layer of the bundled MiniLM over the same texts.

A mixin of :class:`~.dashboard.Dashboard`. The texts are this set's ``text`` column, when it has one,
or the bundled ``sentences`` sample (first sentences of standard-library docstrings, with their module
as the label), at most a chosen number of them (a seeded uniform sample). Pressing Run computes
:func:`embgeo.analysis.layer_geometry` of all-MiniLM-L6-v2 (bundled, offline) in the worker thread, the
bar moving batch by batch and layer by layer, and :func:`embgeo.analysis.similarity_matrix` of the
layers; the tab shows one curve per statistic across depth and the layer x layer linear-CKA heat map.
The layer picker opens one layer's pooled states (:meth:`LayerGeometry.layer_set`) as the dashboard's
set, so every other tab shows that layer (:meth:`~.dashboard.Dashboard.open_set`); the last layer (or
the first, when the last is opened) is offered as the second set in the Compare tab.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from embgeo.analysis import EmbeddingInputError, datasets, layer_geometry, similarity_matrix

from . import _figures as F
from ._html import format_number, italic
from ._options import LAYER_TEXTS_DEFAULT, LAYER_TEXTS_MAX

MODEL = "all-MiniLM-L6-v2"
SAMPLE = "sentences"
_PRESS_RUN = "Choose the texts and press Run: the bundled all-MiniLM-L6-v2 reads them once, every layer kept."
#: The curves drawn, in order: field of LayerGeometry.curves(), panel title, what it says.
CURVES = (("mean_cosine", "Mean cosine", "anisotropy: mean cosine over distinct pairs (Ethayarajh, 2019)"),
          ("isoscore", "IsoScore", "1 = isotropic (Rudman et al., 2022)"),
          ("effective_rank", "Effective rank", "of the covariance spectrum (Roy & Vetterli, 2007)"),
          ("twonn", "TwoNN intrinsic dimension", "Facco et al., 2017; the profile of Valeriani et al., 2023"),
          ("hubness_skewness", "Hubness (skewness of N_k)", "Radovanovic et al., 2010"),
          ("knn_overlap_last", "k-NN overlap with the last layer", "share of each row's k neighbours kept"))


class LayersView:
    """The Layers tab (see the module docstring)."""

    def _build_layers_view(self) -> None:
        self._layers_widgets: list[W.Widget] = []  # kept when open_set rebuilds the other tabs
        own = self._own_layers
        self.layer_geometry = None
        self.layers_source = own(W.Dropdown(description="texts", layout=W.Layout(width="420px")))
        self.layers_cap = own(W.BoundedIntText(value=LAYER_TEXTS_DEFAULT, min=3, max=LAYER_TEXTS_MAX, step=100,
                                               description="at most", layout=W.Layout(width="180px")))
        self.layers_pooling = own(W.Dropdown(options=[("mean of the tokens", "mean"), ("first token (CLS)", "cls")],
                                             value="mean", description="pooling", layout=W.Layout(width="260px")))
        self.layers_choice = own(W.Text(value="all", description="layers", layout=W.Layout(width="200px"),
                                        tooltip="all, or hidden-state indices such as 0, 3, 6 (0 = embedding output)"))
        self.layers_run = own(W.Button(description="Run", button_style="primary", icon="play",
                                       tooltip="Read the texts with the bundled MiniLM and measure every layer"))
        self.layers_run.on_click(lambda _: self.run_layers())
        self.layers_pick = own(W.Dropdown(options=[], description="layer", layout=W.Layout(width="200px")))
        self.layers_open = own(W.Button(description="Open in every tab", icon="folder-open", disabled=True,
                                        tooltip="Make this layer's vectors the dashboard's set"))
        self.layers_open.on_click(lambda _: self.open_layer())
        self._first_set = None  # (set, compare_with) the dashboard showed before a layer was opened
        self.layers_back = own(W.Button(description="Back to the first set", icon="undo",
                                        tooltip="Show the set this dashboard opened with again"))
        self.layers_back.layout.display = "none"
        self.layers_back.on_click(lambda _: self.back_to_first_set())
        self.layers_page = own(W.HTML(italic(_PRESS_RUN)))
        self._layers_boxes = {name: own(W.Box()) for name in ("curves", "cka")}
        self.layers_charts = own(W.VBox([own(W.HBox([self.layers_pick, self.layers_open, self.layers_back])),
                                         self._layers_boxes["curves"], self._layers_boxes["cka"]]))
        self.layers_results = own(W.VBox([self.layers_page, self.layers_charts]))
        self._result_parts["Layers"] = (self.layers_page, [self.layers_charts])
        explain = ("<p class='embgeo-note'>The bundled all-MiniLM-L6-v2 (offline) reads the texts once and keeps "
                   "every hidden state: the embedding output (layer 0) and each of its 6 blocks, pooled per text. "
                   "Per layer: the mean cosine and IsoScore, the effective rank, TwoNN, hubness and how many of "
                   "each text's neighbours it shares with the last layer; below, the linear CKA of every pair of "
                   "layers (Kornblith et al., 2019). Pick a layer to open it in every other tab. In the papers, "
                   "anisotropy grows with depth in pre-trained models (Ethayarajh, 2019) and the intrinsic "
                   "dimension rises then falls (Valeriani et al., 2023); a contrastively trained sentence encoder "
                   "is pushed towards isotropy at its last layer.</p>")
        self.panels["Layers"].children = [own(W.HBox([self.layers_source, self.layers_cap, self.layers_pooling,
                                                       self.layers_choice, self.layers_run])),
                                          own(W.HTML(explain)), self.layers_results]
        self._refresh_layer_sources()

    def _own_layers(self, widget: W.Widget) -> W.Widget:
        self._layers_widgets.append(widget)
        return self._own(widget)

    def _layers_figure(self, name: str) -> F.FigureWidget:
        box = self._layers_boxes[name]
        if not box.children:
            box.children = [self._own_layers(F.new_widget())]
        return box.children[0]

    def _layout_layers(self) -> None:
        self._refresh_layer_sources()
        if self.layer_geometry is None:
            self._show_result_message("Layers", italic(_PRESS_RUN))

    def _refresh_layer_sources(self) -> None:
        """Offer this set's text column (when it has one) and the bundled sentences (when installed)."""
        options = []
        texts = self.controller.data.texts
        if texts is not None:
            options.append((f"this set's text column ({len(texts):,} texts)", "own"))
        if SAMPLE in datasets.list_samples(installed=True):
            options.append((f"bundled sample: {SAMPLE} (docstring first sentences)", "sample"))
        current, keys = self.layers_source.value, [key for _, key in options]
        self.layers_source.options = options
        if keys:  # the choice made before, else this set's texts, else the sample
            self.layers_source.value = current if current in keys else keys[0]

    def _layer_texts(self) -> tuple[list[str], object, str]:
        """The texts to read, their labels (or None) and a description, capped at ``layers_cap``."""
        source = self.layers_source.value
        if source is None:
            raise EmbeddingInputError("no texts to read: this set has no 'text' column and the bundled "
                                      f"{SAMPLE!r} sample is not installed")
        es = self.controller.data if source == "own" else datasets.load_sample(SAMPLE)
        texts = es.texts
        cap = int(self.layers_cap.value)
        rows = np.arange(len(texts))
        if len(rows) > cap:  # a seeded uniform sample, in the set's order
            rows = np.sort(np.random.default_rng(0).choice(len(rows), size=cap, replace=False))
        md = es.metadata
        labels = md["label"].astype(str).to_numpy()[rows] if "label" in md.columns else None
        what = f"{len(rows):,} of the {len(texts):,} texts of {es.name}"
        return [texts[i] for i in rows], labels, what

    def _chosen_layers(self):
        text = self.layers_choice.value.strip().lower()
        if text in ("", "all"):
            return "all"
        try:
            return [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise EmbeddingInputError(f"layers must be 'all' or integers such as '0, 3, 6', got "
                                      f"{self.layers_choice.value!r}") from None

    def run_layers(self) -> None:
        """Measure every chosen layer over the texts, and their CKA matrix (worker thread, with progress)."""
        c = self.controller
        pooling = self.layers_pooling.value

        def compute():
            layers = self._chosen_layers()
            c.step(3, "choosing the texts...")
            texts, labels, what = self._layer_texts()
            g = layer_geometry(MODEL, texts, layers=layers, pooling=pooling, labels=labels, k=min(10, len(texts) - 1),
                               progress=c.progress_between(5, 85, f"{MODEL}: hidden states of {len(texts):,} texts"))
            names = [f"layer {int(layer)}" for layer in g.layers]
            cka = similarity_matrix(g.layer_sets(), statistic="linear_cka", names=names,
                                    progress=c.progress_between(85, 98, "linear CKA of every pair of layers..."))
            return g, cka, what

        self._submit("Layers", f"layer geometry ({MODEL})", compute, self._show_layers)

    def _show_layers(self, result) -> None:
        g, cka, what = result
        e = html.escape
        self.layer_geometry, self.layer_cka = g, cka
        curves = g.curves()
        rows = "".join(f"<tr><td>{int(layer)}</td>" + "".join(f"<td>{format_number(curves[name][i])}</td>"
                                                           for name, _, _ in CURVES) + "</tr>"
                       for i, layer in enumerate(g.layers))
        heads = "".join(f"<th>{e(title)}</th>" for _, title, _ in CURVES)
        notes = "".join(f"<div class='embgeo-warning'>{e(n)}</div>" for n in g.notes)
        doubts = [w for per_layer in g.layer_warnings for w in per_layer]
        if doubts:  # one line, opened on request: a few per layer is common on small samples
            notes += (f"<details><summary class='embgeo-note'>{len(doubts)} reasons to doubt some layers' intrinsic "
                      "dimension</summary>" + "".join(f"<div class='embgeo-note'>{e(w)}</div>" for w in doubts)
                      + "</details>")
        labels = ("" if g.label_agreement is None else
                  "<p>k-NN label accuracy per layer: " + ", ".join(
                      f"{int(layer)}: {acc:.1%}" for layer, acc in zip(g.layers, g.label_agreement)) + "</p>")
        self.layers_page.value = (
            f"<p><b>{e(g.model)}</b>, {g.pooling} pooling, {what}: {g.n:,} rows per layer, {g.dim} dims, "
            f"layers {', '.join(str(int(x)) for x in g.layers)} of {g.n_hidden} hidden states, k = {g.k}, "
            f"on {e(g.device)}.</p>{notes}<table class='embgeo-nn'><tr><th>layer</th>{heads}</tr>{rows}</table>"
            + labels)
        F.redraw(self._layers_figure("curves"), layer_curves_figure(g))
        F.redraw(self._layers_figure("cka"), cka_heatmap_figure(cka))
        self.layers_pick.options = [(f"layer {int(layer)}", int(layer)) for layer in g.layers]
        self.layers_pick.value = int(g.layers[-1])
        self.layers_open.disabled = False
        self._show_results("Layers")

    def open_layer(self, layer: int | None = None) -> None:
        """Open one layer's pooled states as the dashboard's set (every tab then shows that layer).

        The last analysed layer (the first, when the last is opened) becomes the Compare tab's given set,
        so its CKA, Procrustes and mutual k-NN against this layer are one press away.
        """
        g = self.layer_geometry
        if g is None:
            self.error.value = "<div class='embgeo-error'>Run the layer geometry first.</div>"
            return
        layer = int(self.layers_pick.value if layer is None else layer)
        other = int(g.layers[-1] if layer != int(g.layers[-1]) else g.layers[0])

        def compute():
            self.controller.step(20, f"the vectors of layer {layer}...")
            chosen = g.layer_set(layer)
            self.controller.step(60, f"the vectors of layer {other} (offered in Compare)...")
            return chosen, (g.layer_set(other) if other != layer else None)

        def done(sets):
            chosen, second = sets
            if self._first_set is None:
                self._first_set = (self.controller.data, self.controller.compare_with)
            self.open_set(chosen, compare_with=second)
            self.layers_back.layout.display = None
            self.layers_page.value = (self.layers_page.value.split("<p class='embgeo-open'>")[0]
                                      + f"<p class='embgeo-open'>Every tab now shows <b>{html.escape(chosen.name)}"
                                      f"</b> ({chosen.n:,} x {chosen.dim}).</p>")

        self.controller.submit(f"opening layer {layer}", compute, done)

    def back_to_first_set(self) -> None:
        """Show the set the dashboard showed before the first layer was opened (the Layers tab stays)."""
        if self._first_set is None:
            return
        data, compare_with = self._first_set
        self._first_set = None
        self.open_set(data, compare_with=compare_with)
        self.layers_back.layout.display = "none"
        self.layers_page.value = self.layers_page.value.split("<p class='embgeo-open'>")[0]


def layer_curves_figure(g) -> go.Figure:
    """One panel per statistic of :data:`CURVES` against the hidden-state index (float32 traces)."""
    curves = g.curves()
    fig = make_subplots(rows=2, cols=3, subplot_titles=[title for _, title, _ in CURVES],
                        horizontal_spacing=0.08, vertical_spacing=0.16)
    x = np.asarray(g.layers, dtype=np.float32)
    for i, (name, title, meaning) in enumerate(CURVES):
        fig.add_trace(go.Scatter(x=x, y=np.asarray(curves[name], dtype=np.float32), mode="lines+markers",
                                 name=title, hovertemplate=f"layer %{{x}}: %{{y:.3g}}<extra>{meaning}</extra>",
                                 marker_color=F._QUALITATIVE[i]), row=i // 3 + 1, col=i % 3 + 1)
    fig.update_xaxes(title_text="layer (0 = embedding output)", dtick=1)
    fig.update_layout(template="plotly_white", height=560, width=980, showlegend=False,
                      margin=dict(l=40, r=10, t=50, b=40), title=f"Across the layers of {g.model.rsplit('/', 1)[-1]}")
    return fig


def cka_heatmap_figure(matrix) -> go.Figure:
    """The layer x layer similarity matrix as a heat map (0 to 1, values written in the cells)."""
    z = np.asarray(matrix.matrix, dtype=np.float32)
    fig = go.Figure(go.Heatmap(z=z, x=list(matrix.names), y=list(matrix.names), zmin=0.0, zmax=1.0,
                               colorscale="Viridis", text=np.round(z, 2).astype(str), texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title=matrix.statistic)))
    fig.update_layout(template="plotly_white", height=480, width=560, margin=dict(l=60, r=10, t=50, b=60),
                      title=f"{matrix.statistic} of every pair of layers ({matrix.n:,} items)",
                      yaxis=dict(autorange="reversed"))
    return fig
