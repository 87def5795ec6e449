"""The dashboard controller, headless: right numbers for each control, caching, errors in the page."""

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, Verdict
from embgeo.widgets import DashboardController


@pytest.fixture(scope="module")
def ctl(clustered):
    return DashboardController(clustered)


def test_colour_by_norm_and_metadata(ctl, clustered):
    values, kind, label = ctl.color_values("norm")
    assert kind == "numeric" and values.dtype == np.float32
    np.testing.assert_allclose(values, np.linalg.norm(clustered.vectors, axis=1), rtol=1e-6)
    codes, kind, cats = ctl.color_values("label")
    assert kind == "categorical" and cats == ["group 0", "group 1", "group 2"]
    np.testing.assert_array_equal(codes, np.arange(300) % 3)
    score, kind, _ = ctl.color_values("score")  # many distinct numbers: a continuous scale
    assert kind == "numeric" and score[-1] == pytest.approx(1.0)
    rows = np.array([5, 7, 299])
    np.testing.assert_array_equal(ctl.color_values("label", rows=rows)[0], rows % 3)
    assert ctl.color_values("none")[1] == "none"
    with pytest.raises(EmbeddingInputError, match="no metadata column"):
        ctl.color_values("nope")


def test_colours_lump_rare_categories_log_scale_wide_numbers_and_skip_unique_text():
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 600
    module = [f"m{i:03d}" for i in rng.zipf(1.5, n) % 150]  # many categories, a few common
    md = pd.DataFrame({"text": [f"sentence {i}" for i in range(n)], "label": module,
                       "frequency": 10.0 ** rng.uniform(-7, -2, n)})
    c = DashboardController(EmbeddingSet(rng.normal(size=(n, 8)).astype(np.float32), md))
    assert "text" not in c.color_options() and {"label", "frequency"} <= set(c.color_options())
    codes, kind, cats = c.color_values("label")
    counts = pd.Series(module).value_counts()
    assert kind == "categorical" and len(cats) == 12 and cats[-1] == f"other ({counts.size - 11} more)"
    commonest = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:11]
    assert cats[:11] == [name for name, _ in commonest]
    expected = np.array([cats.index(m) if m in cats[:11] else 11 for m in module], dtype=np.float32)
    np.testing.assert_array_equal(codes, expected)
    values, kind, label = c.color_values("frequency")  # five orders of magnitude: a log10 scale
    assert kind == "numeric" and label == "log10 frequency"
    np.testing.assert_allclose(values, np.log10(md["frequency"]).to_numpy(np.float32), rtol=1e-6)


def test_colour_by_k_occurrence_counts_in_links(ctl, clustered):
    values, kind, _ = ctl.color_values("k-occurrence")
    nn = clustered.neighbors(ctl.k, metric="cosine")
    np.testing.assert_array_equal(values, np.bincount(nn.indices.ravel(), minlength=300))


def test_colour_by_local_id_is_the_report_lid(ctl):
    values, kind, _ = ctl.color_values("local ID")
    np.testing.assert_allclose(values, ctl.intrinsic().lid.astype(np.float32))


def test_neighbour_table_is_the_original_space_knn(ctl, clustered):
    table = ctl.neighbor_table(17)
    nn = clustered.neighbors(ctl.k, metric="cosine")
    assert [t["row"] for t in table] == nn.indices[17].tolist()
    u = clustered.vectors / np.linalg.norm(clustered.vectors, axis=1, keepdims=True)
    cos = u[nn.indices[17]] @ u[17]
    np.testing.assert_allclose([t["similarity"] for t in table], cos, atol=1e-5)
    assert table[0]["text"] == f"item {nn.indices[17, 0]}"
    assert all(a["similarity"] >= b["similarity"] for a, b in zip(table, table[1:]))
    with pytest.raises(EmbeddingInputError, match="outside"):
        ctl.neighbor_table(300)


def test_selection_stats_match_brute_force(ctl, clustered):
    rows = [3, 10, 11, 200, 250]
    s = ctl.selection_stats(rows)
    u = clustered.vectors[rows] / np.linalg.norm(clustered.vectors[rows], axis=1, keepdims=True)
    g = u @ u.T
    assert s["mean_cosine"] == pytest.approx(g[~np.eye(5, dtype=bool)].mean(), abs=1e-6)
    assert s["count"] == 5 and s["share"] == pytest.approx(5 / 300)
    assert dict(s["top_label"])["group 2"] == 2  # rows 11 and 200
    assert s["examples"] == [f"item {r}" for r in rows]
    assert ctl.selection_stats([])["count"] == 0


def test_cards_report_the_analysis_numbers_with_thresholds(ctl):
    cards = {c.title.split(" (")[0]: c for c in ctl.cards()}
    iso, hub = ctl.isotropy(), ctl.hubness()
    assert cards["Mean cosine"].value == f"{iso.mean_cosine:.3g}"
    assert cards["Hubness"].value == f"{hub.skewness:.3g}"
    # planted hubs: every cluster centre is in nearly every member's list -> skew above 1
    assert 1 < hub.skewness < 3 and cards["Hubness"].status == "warn"
    assert cards["Hubness"].threshold == "ok < 1, warn < 3, bad above"
    assert all(isinstance(c, Verdict) and c.meaning and c.advice for c in cards.values())


def test_grading_uses_the_stated_thresholds():
    from embgeo.analysis.report.verdicts import _graded

    grade = lambda v, hib: _graded("x", v, "m", (1.0, 3.0) if hib else (0.3, 0.1), higher_is_bad=hib,
                                   advice="do").status
    assert [grade(v, True) for v in (0.99, 1.0, 2.99, 3.0)] == ["ok", "warn", "warn", "bad"]
    assert [grade(v, False) for v in (0.3, 0.29, 0.1, 0.09)] == ["ok", "warn", "warn", "bad"]
    assert grade(float("nan"), True) == "info"


def test_narrow_cone_is_flagged_bad():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32) * 0.1 + 1.0  # all vectors near (1, ..., 1)
    cards = {c.title: c for c in DashboardController(x).cards()}
    assert cards["Mean cosine"].status == "bad"
    assert "all-but-the-top" in cards["Mean cosine"].advice


def test_results_are_cached_across_panels(ctl, monkeypatch):
    import embgeo.analysis as iso_mod

    first = ctl.isotropy()
    monkeypatch.setattr(iso_mod, "isotropy_report", lambda *a, **k: pytest.fail("recomputed"))
    assert ctl.isotropy() is first
    ctl.cards()  # the overview reuses it too
    p = ctl.projection("pca", 2)
    assert ctl.projection("pca", 2) is p and ctl.is_cached("projection", "pca", 2, "cosine")


def test_projection_setting_changes_dimension(ctl):
    assert ctl.projection("pca", 3).coords.shape == (300, 3)
    assert ctl.projection("pca", 2).coords.shape == (300, 2)


def test_submit_reports_errors_without_traceback(ctl):
    seen = []
    ctl.submit("broken", lambda: (_ for _ in ()).throw(EmbeddingInputError("k is too large")),
               done=lambda r: seen.append("done"), failed=lambda: seen.append("failed"))
    assert ctl.error == "Input problem: k is too large"
    assert "Traceback" not in ctl.error and seen == ["failed"] and not ctl.busy
    ctl.submit("fine", lambda: 42, done=seen.append)
    assert ctl.error == "" and seen[-1] == 42 and ctl.progress == 100


def test_background_mode_runs_in_a_thread(clustered):
    import threading

    c = DashboardController(clustered, background=True)
    done = threading.Event()
    out = []
    c.submit("thread", lambda: threading.current_thread().name, lambda r: (out.append(r), done.set()))
    assert done.wait(10)
    assert out[0] != threading.main_thread().name


def test_accepts_array_and_path(tmp_path):
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    before = x.copy()
    assert DashboardController(x).data.n == 50
    np.save(tmp_path / "v.npy", x)
    assert DashboardController(str(tmp_path / "v.npy")).data.dim == 8
    np.testing.assert_array_equal(x, before)
    with pytest.raises(EmbeddingInputError, match="at least 3"):
        DashboardController(x[:2])


def test_colour_by_frequency_when_weights_come_without_a_column(clustered):
    weights = np.arange(1, 301, dtype=np.float64) ** -1.0  # Zipf-like, three orders of magnitude
    ctl = DashboardController(EmbeddingSet(clustered.vectors, weights=weights))
    assert "frequency" in ctl.color_options()
    values, kind, label = ctl.color_values("frequency")
    assert kind == "numeric" and "log10" in label
    np.testing.assert_allclose(values, np.log10(weights), rtol=1e-6)
    assert "frequency" not in DashboardController(clustered).color_options()
