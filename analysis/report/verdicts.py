"""Verdicts: each headline number with what it means, a status against stated thresholds, what to do
next, and the paper it comes from.

One home for the thresholds and the advice, so the dashboard's Overview cards, ``embgeo report`` (text
and JSON) and the HTML report say the same thing about the same numbers. The thresholds are rules of
thumb from the cited papers' own figures, stated on every verdict so a reader can disagree with them.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from .._core import Result, metric as _field, stylesheet

#: Statuses, best first; "info" has no verdict (a number to read, not to grade).
STATUSES = ("ok", "warn", "bad", "info")


@dataclass(frozen=True, repr=False)
class Verdict(Result):
    """One headline number: its value, meaning, status against the stated thresholds, and advice."""

    _title = "verdict"
    title: str = _field("What is measured.")
    value: str = _field("The number, formatted.")
    meaning: str = _field("What the number says, in plain language.")
    status: str = _field("ok, warn or bad against the thresholds; info when the number is not graded.")
    threshold: str = _field("The thresholds the status was read against.")
    advice: str = _field("What to do next.")
    reference: str = _field("Where the measure comes from.", default="")

    def __repr__(self) -> str:
        return (f"[{self.status:>4}] {self.title}: {self.value}. {self.meaning} (threshold: {self.threshold}). "
                f"Next: {self.advice}" + (f" [{self.reference}]" if self.reference else ""))

    def _html_body(self) -> str:
        e = html.escape
        return (f"<div class='embgeo-card {e(self.status)}'><span class='s'>{e(self.status)}</span>"
                f"<div class='t'>{e(self.title)}</div><div class='v'>{e(self.value)}</div>"
                f"<div class='m'>{e(self.meaning)}</div><div class='th'>Threshold: {e(self.threshold)}</div>"
                f"<div class='a'><b>Next:</b> {e(self.advice)}</div>"
                + (f"<div class='th'><i>{e(self.reference)}</i></div>" if self.reference else "") + "</div>")

    def _repr_html_(self) -> str:
        return verdicts_html([self])


def verdicts_html(verdicts, *, style: bool = True) -> str:
    """The verdicts as a row of cards (with the report stylesheet unless ``style=False``)."""
    cards = "".join(v._html_body() for v in verdicts)
    return (f"<style>{stylesheet()}</style>" if style else "") + f"<div class='embgeo-cards'>{cards}</div>"


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _graded(title, value, meaning, thresholds, *, higher_is_bad, advice, reference="", percent=False) -> Verdict:
    """A verdict whose status comes from two thresholds (ok/warn boundary, warn/bad boundary)."""
    a, b = thresholds
    if value is None or not math.isfinite(value):
        status = "info"
    elif higher_is_bad:
        status = "ok" if value < a else "warn" if value < b else "bad"
    else:
        status = "ok" if value >= a else "warn" if value >= b else "bad"
    show = (lambda v: f"{v:.1%}") if percent else _fmt
    rule = (f"ok < {show(a)}, warn < {show(b)}, bad above" if higher_is_bad
            else f"ok >= {show(a)}, warn >= {show(b)}, bad below")
    return Verdict(title, "n/a" if value is None else show(value), meaning, status, rule,
                   advice if status != "ok" else "Nothing to fix here.", reference)


def isotropy_verdicts(iso) -> list[Verdict]:
    """Mean cosine, IsoScore and rogue dimensions of an :class:`~embgeo.analysis.IsotropyReport`."""
    rogue = iso.rogue_dimensions
    listed = ", ".join(f"dim {r['dim']} ({r['share']:.0%})" for r in rogue)
    return [
        _graded("Mean cosine", iso.mean_cosine, "Average cosine between two random items. Near 0: directions "
                "spread out; near 1: everything points one way (a narrow cone), so raw cosines say little.",
                (0.2, 0.5), higher_is_bad=True,
                advice="Centre the vectors, or remove the top principal directions (all-but-the-top), "
                       "then compare again.", reference="Ethayarajh, EMNLP 2019"),
        _graded("IsoScore", iso.isoscore, "How evenly the variance is spread over all dimensions: 1 = "
                "uniformly, 0 = a single direction.", (0.3, 0.1), higher_is_bad=False,
                advice="Whitening (PCA/ZCA or Zipfian) spreads the variance; look at the spectrum first.",
                reference="Rudman et al., Findings of ACL 2022"),
        Verdict("Rogue dimensions", str(len(rogue)),
                "Coordinates that alone carry a large share of every cosine (a few dimensions deciding "
                "similarity)." + (f" {listed}" if listed else ""),
                "ok" if not rogue else "warn", "ok when none",
                "Standardise the dimensions (z-score) or remove the mean before cosine; see the spectrum."
                if rogue else "Nothing to fix here.", "Timkey & van Schijndel, EMNLP 2021"),
    ]


def hubness_verdicts(hub) -> list[Verdict]:
    """Skewness of N_k and the antihub rate of a :class:`~embgeo.analysis.HubnessReport`."""
    return [
        _graded(f"Hubness (skewness of N_{hub.k})", hub.skewness, "Skew of how often each item is someone's "
                "nearest neighbour. Large: a few hubs appear in almost every result list.",
                (1.0, 3.0), higher_is_bad=True,
                advice="Try CSLS or mutual proximity for retrieval, or centre the vectors; see the hubness view.",
                reference="Radovanovic et al., JMLR 2010"),
        _graded("Antihubs", hub.antihub_rate, "Share of items that are nobody's neighbour: they are never "
                "retrieved by a similarity search.", (0.1, 0.3), higher_is_bad=True, percent=True,
                advice="Hubness reduction (CSLS, mutual proximity) brings antihubs back into results.",
                reference="Radovanovic et al., JMLR 2010"),
    ]


def intrinsic_dimension_verdict(idr, dim: int) -> Verdict:
    """TwoNN with MLE and PCA beside it; ``warn`` when the estimate is unreliable (its warnings)."""
    return Verdict(
        "Intrinsic dimension (TwoNN)", _fmt(idr.twonn),
        f"Number of directions the data really varies in locally (of {dim}). MLE: {_fmt(idr.mle)}; PCA 90%: "
        f"{idr.pca_90} components.", "warn" if idr.warnings else "info",
        "warn when the estimate is unreliable (too few points or scale-dependent)",
        idr.warnings[0] if idr.warnings else ("Compare with the PCA dimension: a much larger PCA count means a "
                                              "curved, low-dimensional manifold."),
        "Facco et al., Sci. Rep. 2017")


def verdicts(*, isotropy=None, hubness=None, intrinsic_dimension=None, dim: int | None = None) -> list[Verdict]:
    """The verdicts of whichever parts are given, in the order the Overview shows them.

    Parameters
    ----------
    isotropy : IsotropyReport, optional
    hubness : HubnessReport, optional
    intrinsic_dimension : IntrinsicDimensionReport, optional
    dim : int, optional
        Dimension of the vectors (for the intrinsic-dimension meaning); default ``isotropy.dim``.

    Returns
    -------
    list of Verdict
    """
    out: list[Verdict] = []
    if isotropy is not None:
        out += isotropy_verdicts(isotropy)
    if hubness is not None:
        out += hubness_verdicts(hubness)
    if intrinsic_dimension is not None:
        out.append(intrinsic_dimension_verdict(intrinsic_dimension, dim if dim is not None else isotropy.dim))
    return out
