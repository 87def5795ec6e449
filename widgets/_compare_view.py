"""The Compare tab: this set (A) against a second set (B), every geometry number side by side.

A mixin of :class:`~.dashboard.Dashboard`. B is a set given to the dashboard, a transformed copy of A,
or a bundled sample; the table is :meth:`embgeo.analysis.Comparison.table`. When both hold the same
items, the representation-similarity block of the comparison (:func:`embgeo.analysis.representation_similarity`:
CKA, Procrustes, mutual k-NN, RSA, SVCCA and PWCCA) stands beside it.
"""

from __future__ import annotations

import html

import ipywidgets as W

from ._html import format_change, format_number, italic

_CHOOSE = "Choose a second set and press Compare."
#: The similarity block's rows: field of RepresentationSimilarity, name, what the value says.
SIMILARITY_ROWS = (
    ("linear_cka", "linear CKA", "1 = the same up to rotation and scale (Kornblith et al., 2019)"),
    ("debiased_cka", "debiased CKA", "unbiased HSIC: near 0 for unrelated spaces at any n"),
    ("rbf_cka", "RBF CKA", "Gaussian kernels, on a sample"),
    ("procrustes_distance", "Procrustes distance", "0 = a rotation, at most sqrt 2 (Williams et al., 2021)"),
    ("angular_shape_distance", "angular shape distance", "radians: 0 = a rotation, pi/2 = orthogonal"),
    ("mutual_knn", "mutual k-NN", "share of each item's k neighbours found in both (Huh et al., 2024)"),
    ("rsa_spearman", "RSA", "Spearman of the two distance matrices, on a sample (Kriegeskorte et al., 2008)"),
    ("svcca", "SVCCA", "mean canonical correlation, top SVD directions (Raghu et al., 2017)"),
    ("pwcca", "PWCCA", "projection-weighted CCA (Morcos et al., 2018)"),
)


#: The comparison's headline rows, shown first: metric path, name, shown as a percentage.
HEADLINE_ROWS = (
    ("isotropy.mean_cosine", "mean cosine", False),
    ("isotropy.isoscore", "IsoScore", False),
    ("intrinsic_dimension.twonn", "intrinsic dimension (TwoNN)", False),
    ("hubness.skewness", "hubness (skewness of N_k)", False),
    ("hubness.antihub_rate", "antihubs", True),
    ("concentration.relative_contrast_median", "relative contrast (median)", False),
    ("near_duplicates.rate", "near duplicates", True),
)


def _value(value, percent: bool, *, signed: bool = False) -> str:
    """A headline cell: a percentage for rates, else the table's number format."""
    if value is None or not percent:
        return format_change(value) if signed else format_number(value)
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def headline_html(comparison) -> str:
    """The headline rows of a comparison, named in words, rates as percentages (as the Overview shows
    them), before the table of every number."""
    e = html.escape
    rows = []
    for path, name, percent in HEADLINE_ROWS:
        try:
            r = comparison.row(path)
        except KeyError:  # a part left out of this comparison
            continue
        rows.append(f"<tr><td>{e(name)}</td><td>{_value(r['a'], percent)}</td><td>{_value(r['b'], percent)}</td>"
                    f"<td>{_value(r['change'], percent, signed=True)}</td>"
                    f"<td class='embgeo-note'>{e(r['meaning'])}</td></tr>")
    if not rows:
        return ""
    return (f"<table class='embgeo-nn embgeo-headline'><tr><th>headline</th><th>A</th><th>B</th>"
            f"<th>change (B - A)</th><th>meaning</th></tr>{''.join(rows)}</table>")


class CompareView:
    """The Compare tab (see the module docstring)."""

    def _build_compare_view(self) -> None:
        own = self._own
        self.compare_choice = own(W.Dropdown(options=self.controller.compare_choices(), description="compare with",
                                             style={"description_width": "initial"}, layout=W.Layout(width="520px")))
        self.compare_run = own(W.Button(description="Compare", button_style="primary", icon="play",
                                        tooltip="Compute the geometry of both sets and put it side by side"))
        self.compare_run.on_click(lambda _: self.run_compare())
        self.compare_page = own(W.HTML(italic(_CHOOSE)))
        self.compare_results = own(W.VBox([self.compare_page]))
        self._result_parts["Compare"] = (self.compare_page, [])
        explain = ("<p class='embgeo-note'>A is this set, B the one you choose: another model's vectors of the "
                   "same items (pass <code>Dashboard(data, compare_with=other)</code>), a post-processed copy of "
                   "this set, or a bundled sample. Every number of the two geometry reports is shown side by side; "
                   "when both hold the same items, row for row, also the share of each item's k nearest neighbours "
                   "kept from A to B and, with a <code>label</code> column, the k-NN label accuracy of each.</p>")
        self.panels["Compare"].children = [own(W.HBox([self.compare_choice, self.compare_run])), own(W.HTML(explain)),
                                           self.compare_results]

    def _refresh_compare_choices(self) -> None:
        """Offer transforms applied in the playground too, keeping the current choice."""
        current = self.compare_choice.value
        options = self.controller.compare_choices()
        self.compare_choice.options = options
        if current in [key for _, key in options]:
            self.compare_choice.value = current

    def _layout_compare(self) -> None:
        self._refresh_compare_choices()
        self._show_result_message("Compare", italic(_CHOOSE))

    def run_compare(self) -> None:
        """Compare this set with the chosen one (worker thread, with progress)."""
        c = self.controller
        key = self.compare_choice.value
        self._submit("Compare", "comparison", lambda: (c.comparison(key), c.comparison_notes(key)),
                     self._show_compare)

    def _show_compare(self, result) -> None:
        comparison, notes = result
        e = html.escape
        self.comparison = comparison
        self.compare_rows = comparison.table()
        warnings = "".join(f"<div class='embgeo-warning'>{e(n)}</div>" for n in (*notes, *comparison.notes))
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
        table = (headline_html(comparison)
                 + f"<details><summary>All {len(self.compare_rows)} numbers of both reports</summary>"
                 f"<table class='embgeo-nn embgeo-compare'><tr><th>metric</th><th>A: {e(comparison.name_a)}</th>"
                 f"<th>B: {e(comparison.name_b)}</th><th>change (B - A)</th><th>meaning</th></tr>{body}</table>"
                 "</details>")
        self.compare_similarity = comparison.similarity
        block = similarity_html(comparison.similarity)
        self.compare_page.value = warnings + "".join(lines) + (
            f"<div style='display:flex;gap:24px;align-items:flex-start'><div>{table}</div><div>{block}</div></div>"
            if block else table)
        self._show_results("Compare")


def similarity_html(sim) -> str:
    """The headline rows of a :class:`RepresentationSimilarity` (empty for None), with its notes: the one
    on CCA when n <= d_A + d_B, where SVCCA and PWCCA approach 1 for any two spaces."""
    if sim is None:
        return ""
    e = html.escape
    values = sim.to_dict()
    rows = "".join(f"<tr><td>{e(name)}{f' (k = {sim.k})' if key == 'mutual_knn' else ''}</td>"
                   f"<td>{format_number(values.get(key))}</td><td class='embgeo-note'>{e(meaning)}</td></tr>"
                   for key, name, meaning in SIMILARITY_ROWS)
    notes = "".join(f"<div class='embgeo-warning'>{e(n)}</div>" for n in sim.notes)
    return (f"<p><b>Representation similarity</b> of the same {sim.n:,} items ({sim.dim_a} vs {sim.dim_b} dims; "
            f"RBF CKA and RSA on {sim.sample_size:,})</p>{notes}<table class='embgeo-nn embgeo-similarity'>"
            f"<tr><th>statistic</th><th>value</th><th>meaning</th></tr>{rows}</table>")
