"""The Transforms tab: fit a post-processing transform on the set and see every number before and after.

A mixin of :class:`~.dashboard.Dashboard`. The parameter controls of each transform are built the
first time it is chosen and kept (a session that flips between transforms reuses them); the two
before/after maps are FigureWidgets kept for the dashboard's life.
"""

from __future__ import annotations

import html
import io

import ipywidgets as W
import numpy as np

from . import _figures as F
from ._html import before_after_html, download_link, file_name, italic
from ._options import DERIVED_COLOURS, TABS, TRANSFORM_LABELS, transform_label, transform_params
from ._projection_view import shown_positions

_CHOOSE = "Choose a transform and its parameters, then press Apply."
#: Largest transformed set offered as a download from the page (it travels base64 in the page, a third
#: larger); bigger sets are saved from Python.
DOWNLOAD_MAX_BYTES = 100 * 2**20


class TransformsView:
    """The transform playground (see the module docstring)."""

    def _build_transforms_view(self) -> None:
        c, own = self.controller, self._own
        methods = c.available_transforms()
        self.transform = own(W.Dropdown(options=[(TRANSFORM_LABELS.get(m, m), m) for m in methods],
                                        value=methods[0], description="transform", layout=W.Layout(width="380px")))
        self.transform_param_box = own(W.HBox())
        self.transform_params: dict[str, W.Widget] = {}
        self._param_widgets: dict[str, dict[str, W.Widget]] = {}  # per transform, built once
        self.transform_apply = own(W.Button(description="Apply", button_style="primary", icon="play",
                                            tooltip="Fit the transform on this set and compare before with after"))
        self.transform_help = own(W.HTML(""))
        self.transform_page = own(W.HTML(italic(_CHOOSE)))
        self.transform_figures = ()  # the before and after maps, made at the first Apply
        self._map_boxes = (own(W.Box()), own(W.Box()))
        self.transform_maps = own(W.HBox(list(self._map_boxes)))
        self.transform_note = own(W.HTML(""))
        # what to do with the transformed set: keep it (every tab shows it) or take it away as a file
        self.transform_open = own(W.Button(description="Open it in every tab", icon="folder-open",
                                           tooltip="Show the transformed set in every tab (the original stays "
                                                   "in Compare)"))
        self.transform_open.on_click(lambda _: self.open_transformed())
        self.transform_download = own(W.Button(description="Download .npy", icon="download",
                                               tooltip="The transformed vectors as a float32 .npy file"))
        self.transform_download.on_click(lambda _: self.download_transformed())
        self.transform_link = own(W.HTML(""))
        self.transform_keep = own(W.HBox([self.transform_open, self.transform_download, self.transform_link],
                                         layout=W.Layout(align_items="center")))
        self._shown_transform: tuple[str, dict] | None = None
        self.transform_results = own(W.VBox([self.transform_page, self.transform_keep, self.transform_maps,
                                             self.transform_note]))
        self._result_parts["Transforms"] = (self.transform_page, [self.transform_keep, self.transform_maps,
                                                                  self.transform_note])
        self.transform.observe(lambda ch: self._show_transform_params(), "value")
        self.transform_apply.on_click(lambda _: self.apply_transform())
        self._show_transform_params()
        self.panels["Transforms"].children = [
            own(W.HBox([self.transform, self.transform_param_box, self.transform_apply])), self.transform_help,
            self.transform_results]

    def _param_controls(self, method: str) -> dict[str, W.Widget]:
        """One control per parameter of ``method``, at the analysis defaults (built once per method)."""
        if method not in self._param_widgets:
            widgets = {}
            for spec in transform_params(method, self.controller.data.dim):
                style, layout = {"description_width": "initial"}, W.Layout(width="170px")
                if spec.kind == "int":
                    w = W.BoundedIntText(value=spec.default, min=spec.low, max=spec.high, description=spec.label,
                                         style=style, layout=layout)
                elif spec.kind == "float":
                    w = W.BoundedFloatText(value=spec.default, min=spec.low,
                                           max=1e6 if spec.high is None else spec.high, step=1e-6,
                                           description=spec.label, style=style, layout=layout)
                else:
                    w = W.Dropdown(options=list(spec.options), value=spec.default, description=spec.label,
                                   style=style, layout=W.Layout(width="220px"))
                w.tooltip = spec.help
                widgets[spec.name] = self._own(w)
            self._param_widgets[method] = widgets
        return self._param_widgets[method]

    def _show_transform_params(self) -> None:
        c = self.controller
        self.transform_params = self._param_controls(self.transform.value)
        self.transform_param_box.children = list(self.transform_params.values())
        helps = [f"<b>{html.escape(spec.label)}</b>: {html.escape(spec.help)}"
                 for spec in transform_params(self.transform.value, c.data.dim)]
        missing = "" if "zipfian" in c.available_transforms() else (
            " Zipfian whitening is not offered: it weights every statistic by item frequency, and this set "
            "has no weights.")
        described = "; ".join(helps) + "." if helps else "No parameters."
        self.transform_help.value = (f"<div class='embgeo-note'>{described} The transform "
                                     f"is fitted on this set and applied to it; the cards compare every "
                                     f"geometry number before and after.{html.escape(missing)}</div>")

    def transform_setting(self) -> tuple[str, dict]:
        """The transform and parameters the controls show."""
        return self.transform.value, {name: w.value for name, w in self.transform_params.items()}

    def _layout_transforms(self) -> None:
        # (re)opened, e.g. after a metric change: results of another metric must not stay on screen
        self._show_result_message("Transforms", italic(_CHOOSE))

    def apply_transform(self) -> None:
        """Fit the chosen transform, then show before/after cards and projections (worker thread)."""
        c = self.controller
        method, params = self.transform_setting()
        label = transform_label(method, params)
        self._submit("Transforms", f"{label}: before and after",
                     lambda: (method, params, c.transform_comparison(method, params),
                              c.transform_projections(method, params)),
                     self._show_transform)

    def _show_transform(self, result) -> None:
        method, params, comparison, (before, after) = result
        c = self.controller
        self.transform_cards = c.before_after(comparison)
        self.transform_page.value = ("<div class='embgeo-cards'>" + "".join(before_after_html(k) for k in
                                                                           self.transform_cards) + "</div>")
        shown = shown_positions(len(before.rows))
        hover = np.array([c.data.label(int(r)) for r in before.rows[shown]], dtype=object)
        label = transform_label(method, params)
        maps = F.before_after_scatter(before.coords[shown], after.coords[shown], hover,
                                      titles=(f"Before: PCA ({before.metric})", f"After {label}: PCA ({after.metric})"))
        self.transform_figures = tuple(F.redraw(self._figure_in(box, share=0.5), figure)
                                       for box, figure in zip(self._map_boxes, maps))
        self._color_by_metadata(self.transform_figures, before.rows[shown])
        trust = (f"PCA keeps {before.explained_variance_ratio.sum():.1%} of the variance before and "
                 f"{after.explained_variance_ratio.sum():.1%} after; read the maps as a sketch, the cards as the "
                 f"numbers. {comparison.name_b}: {after.n_total:,} vectors.")
        if len(shown) < len(before.rows):
            trust += f" A random sample of {len(shown):,} points is drawn."
        self.transform_note.value = f"<p class='embgeo-note'>{html.escape(trust)}</p>"
        self._shown_transform, self.transform_link.value = (method, params), ""
        self._show_results("Transforms")
        self._refresh_compare_choices()

    def open_transformed(self) -> None:
        """Open the transformed set shown in every tab; the set it came from becomes Compare's given set."""
        if self._shown_transform is None:
            return
        c = self.controller
        self.open_set(c.transformed(*self._shown_transform), compare_with=c.data)
        self.tabs.selected_index = TABS.index("Overview")  # its cards are the first numbers of the new set

    def download_transformed(self) -> None:
        """A download link of the transformed vectors (.npy, float32), up to :data:`DOWNLOAD_MAX_BYTES`."""
        if self._shown_transform is None:
            return
        c = self.controller
        method, params = self._shown_transform
        es = c.transformed(method, params)
        size = es.n * es.dim * 4
        if size > DOWNLOAD_MAX_BYTES:
            self.transform_link.value = italic(
                f"{size / 2**20:,.0f} MB is too large to download from the page (at most "
                f"{DOWNLOAD_MAX_BYTES // 2**20} MB); in Python: embgeo.analysis.apply_transform(data, {method!r}) "
                "and numpy.save")
            return
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(es.vectors, dtype=np.float32))
        self.transform_link.value = download_link(file_name(es.name, ".npy"), buffer.getvalue(),
                                                  "application/octet-stream",
                                                  f"{file_name(es.name, '.npy')} ({size / 2**20:,.1f} MB)")

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
