"""Verdicts on the headline numbers of a :class:`ShiftReport`: what each says, a status against stated
rules of thumb, and what to do next (the :class:`~embgeo.analysis.report.Verdict` cards every view shows)."""

from __future__ import annotations

import math

from ..report import Verdict


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _share(x) -> str:
    return "an unmeasured share" if x is None or not math.isfinite(x) else f"{x:.0%}"


def _grade(value, ok: float, warn: float) -> str:
    """ok below ``ok``, warn below ``warn``, bad above; info when undefined."""
    if value is None or not math.isfinite(value):
        return "info"
    return "ok" if value < ok else "warn" if value < warn else "bad"


def shift_verdicts(s: dict, transforms: list) -> list[Verdict]:
    """Verdict cards from the summary numbers ``s`` of a shift report and its transform rows."""
    out = []
    status = _grade(s["centroid_gap_in_spreads"], 0.25, 1.0)
    out.append(Verdict(
        "Centroid gap", f"{_fmt(s['centroid_gap'])} ({_fmt(s['centroid_gap_in_spreads'], 2)} corpus spreads)",
        "Distance between the mean query and the mean corpus item, in units of the corpus's own RMS spread "
        f"(sqrt of its total variance). Cosine between the two means: {_fmt(s['mean_cosine_between_means'])}; "
        f"gap between the normalised sets' centres (the modality gap): {_fmt(s['modality_gap'])}.",
        status, "ok < 0.25 spreads, warn < 1, bad above",
        "Nothing to fix here." if status == "ok" else
        "The queries sit off to one side of the corpus: compare centring on the pooled mean (the transform "
        "table) and check the hardest queries.", "Liang et al., NeurIPS 2022 (modality gap)"))
    p, auc, lo = s["mmd_p_value"], s["classifier_auc"], s["classifier_auc_ci"][0]
    status = "info" if p is None else "ok" if p >= 0.05 else "bad" if auc is not None and auc >= 0.75 else "warn"
    out.append(Verdict(
        "Two-sample tests", f"MMD p = {_fmt(p, 2)}, AUC = {_fmt(auc)}",
        "Whether queries and corpus could come from one distribution. MMD (Gaussian kernel, median bandwidth): "
        f"a permutation p-value below 0.05 says they differ. A classifier telling them apart reaches a held-out "
        f"AUC of {_fmt(auc)} (interval {_fmt(lo)} to {_fmt(s['classifier_auc_ci'][1])}); 0.5 = indistinguishable, "
        "1 = perfectly separable. Both on samples of "
        f"{s['sample_size']['corpus']:,} corpus rows and {s['sample_size']['queries']:,} queries.",
        status, "ok when p >= 0.05; else warn, bad when the AUC is 0.75 or more",
        "Nothing to fix here." if status == "ok" else
        "The sets differ: a shift that a classifier finds is a direction in which the queries are unlike "
        "the corpus; see which transform shrinks it.", "Gretton et al., JMLR 2012; Lopez-Paz & Oquab, ICLR 2017"))
    rate = s["knn_ood_rate"]
    status = _grade(rate, 0.10, 0.30)
    out.append(Verdict(
        "Out-of-distribution queries", f"{rate:.1%}" if rate is not None and math.isfinite(rate) else "n/a",
        f"Share of queries farther from their {s['k']}-th corpus neighbour than 95% of corpus items are from "
        f"theirs (5% when queries look like the corpus). By Mahalanobis distance under the corpus covariance: "
        f"{_fmt(100 * s['mahalanobis_ood_rate'] if s['mahalanobis_ood_rate'] is not None else None, 3)}%.",
        status, "ok < 10%, warn < 30%, bad above",
        "Nothing to fix here." if status == "ok" else
        "Many queries land where the corpus is sparse: their neighbours are far and retrieval is fragile; "
        "list them with hardest_queries().", "Sun et al., ICML 2022; Rippel et al., ICPR 2020"))
    ratio = s["total_variance_ratio"]
    out.append(Verdict(
        "Spread of the queries", _fmt(ratio),
        "Total variance of the queries over that of the corpus (1 = equally spread; below 1: the queries "
        f"occupy a smaller region). Largest principal angle between the top {s['n_components']} directions of "
        f"each: {_fmt(max(s['principal_angles']) if s['principal_angles'] else None)} degrees.",
        "info", "not graded", "Large angles mean the queries vary along other directions than the corpus.",
        "Bjorck & Golub, Math. Comp. 1973 (principal angles)"))
    rows = [r for r in transforms if r.get("classifier_auc") is not None and math.isfinite(r["classifier_auc"])]
    if len(rows) > 1 and rows[0]["transform"] == "none":
        # the AUC, not the MMD^2: each row's MMD has its own median bandwidth, so MMD values of different
        # spaces are not on one scale (a whitened space shows a smaller MMD^2 for the same shift)
        raw, best = rows[0], min(rows[1:], key=lambda r: r["classifier_auc"])
        low = raw["classifier_auc_ci"][0]
        helps = low is not None and math.isfinite(low) and best["classifier_auc"] < low
        out.append(Verdict(
            "Transform that closes the gap most", best["transform"] if helps else "none of those tried",
            f"Held-out AUC of the classifier telling queries from corpus: {_fmt(raw['classifier_auc'])} raw "
            f"(interval {_fmt(low)} to {_fmt(raw['classifier_auc_ci'][1])}), {_fmt(best['classifier_auc'])} after "
            f"{best['transform']} (centroid gap {_fmt(raw['centroid_gap_in_spreads'], 2)} -> "
            f"{_fmt(best['centroid_gap_in_spreads'], 2)} spreads). A transform counts only when the AUC after it "
            "falls below the raw interval; each is fitted as stated and applied to corpus and queries alike, and "
            "an affine map applied to both sets (centring, whitening outside cosine) leaves them as separable as "
            "before.", "info", "not graded",
            (f"After it a query's exact top-k keeps {_share(best.get('overlap_at_k'))} of its raw top-k "
             "(overlap_at_k; with an index, the recall columns by bucket): judge that change on labelled "
             "queries before indexing with it." if helps
             else "No transform tried makes the queries look like the corpus; look at the hardest queries instead."),
            "Lopez-Paz & Oquab, ICLR 2017; Liang et al., NeurIPS 2022; Su et al., 2021"))
    return out
