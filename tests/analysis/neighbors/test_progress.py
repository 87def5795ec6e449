"""The engines report progress tile by tile (or list by list) and stop when the callback says so."""

from __future__ import annotations

import pytest

from embgeo.analysis import Cancelled, EmbeddingSet, Progress, approximate_knn, exact_knn, geometry_report
from embgeo.analysis.datasets import make_anisotropic
from embgeo.analysis.neighbors import exact


def _recorder():
    calls = []
    return calls, lambda done, total, description: calls.append((done, total, description))


@pytest.mark.parametrize("self_join", [True, False])
def test_exact_search_reports_every_tile(monkeypatch, self_join):
    x = make_anisotropic(900, 16, random_state=0)
    monkeypatch.setattr(exact, "SYMMETRIC_BLOCK_ROWS", 200)  # 5 blocks: 15 tiles of the half matrix
    monkeypatch.setattr(exact, "CORPUS_BLOCK_ROWS", 300)     # the general kernel: 3 corpus blocks
    calls, report = _recorder()
    exact_knn(x, None if self_join else x[:50], k=5, progress=report)
    total = 15 if self_join else 3
    assert [c[0] for c in calls] == list(range(total + 1)) and {c[1] for c in calls} == {total}
    assert "exact 5-NN" in calls[-1][2]


@pytest.mark.parametrize("join", ["symmetric", "blocked"])
def test_approximate_join_reports_its_progress(join, monkeypatch):
    from embgeo.analysis.neighbors import ivf_join

    monkeypatch.setattr(ivf_join, "JOIN_TILE_ROWS", 16)  # the blocked join reports every 16 tiles
    x = make_anisotropic(3000, 24, random_state=0)
    calls, report = _recorder()
    approximate_knn(x, k=5, recall_sample=100, progress=report, join=join)
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][1] and len(done) > 20
    assert join in calls[-1][2] or join == "symmetric"


def test_cancelling_the_blocked_join_stops_it():
    x = make_anisotropic(3000, 24, random_state=0)

    def stop(done, total, description):
        if done >= 1:
            raise Cancelled("enough")

    with pytest.raises(Cancelled):
        approximate_knn(x, k=5, recall_sample=100, progress=stop, join="blocked")


def test_a_callback_that_raises_stops_the_search_and_nothing_is_cached():
    es = EmbeddingSet(make_anisotropic(900, 16, random_state=0))

    def stop(done, total, description):
        if done >= 1:
            raise Cancelled("enough")

    with pytest.raises(Cancelled):
        es.neighbors(10, progress=stop)
    assert es.cached_tables() == []


def test_the_report_moves_one_callback_through_its_parts_and_the_search(monkeypatch):
    monkeypatch.setattr(exact, "SYMMETRIC_BLOCK_ROWS", 128)
    x = make_anisotropic(1000, 16, random_state=1)
    calls, report = _recorder()
    geometry_report(x, k=5, sample=100, progress=report)
    shares = [done / total for done, total, _ in calls]
    assert shares == sorted(shares) and shares[-1] == 1.0
    inside = [s for s, (_, _, d) in zip(shares, calls) if "self-join" in d]
    assert len(inside) > 20 and len({round(s, 4) for s in inside}) > 20  # it moved during the search


def test_progress_none_shows_no_bar_for_small_work_and_true_always(capsys):
    with Progress(None, 3, "small", auto=False) as p:
        p.update()
    with Progress(False, 3, "off", auto=True) as p:
        p.update()
    assert capsys.readouterr().err == ""
    with Progress(True, 2, "shown") as p:
        p.update(2)
    assert "shown" in capsys.readouterr().err
