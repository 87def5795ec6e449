"""Verdicts: one set of thresholds and advice, shown alike by the report's text, JSON and HTML page,
and by the dashboard's Overview."""

from __future__ import annotations

import json

import pytest

from embgeo.analysis import Verdict, geometry_report, verdicts, verdicts_html
from embgeo.analysis.datasets import make_anisotropic
from embgeo.analysis.report.verdicts import _graded


@pytest.fixture(scope="module")
def report():
    return geometry_report(make_anisotropic(600, 24, n_rogue=2, random_state=0), k=5, sample=100)


def test_grading_uses_the_stated_thresholds():
    grade = lambda v, hib: _graded("x", v, "m", (1.0, 3.0) if hib else (0.3, 0.1), higher_is_bad=hib,  # noqa: E731
                                   advice="do").status
    assert [grade(v, True) for v in (0.99, 1.0, 2.99, 3.0)] == ["ok", "warn", "warn", "bad"]
    assert [grade(v, False) for v in (0.3, 0.29, 0.1, 0.09)] == ["ok", "warn", "warn", "bad"]
    assert grade(float("nan"), True) == "info"


def test_the_report_grades_its_own_numbers(report):
    found = {v.title.split(" (")[0]: v for v in report.verdicts()}
    assert list(found) == ["Mean cosine", "IsoScore", "Rogue dimensions", "Hubness", "Antihubs", "Intrinsic dimension"]
    assert found["Mean cosine"].value == f"{report.isotropy.mean_cosine:.3g}"
    assert found["Mean cosine"].status == "bad"  # make_anisotropic is a narrow cone
    assert found["Rogue dimensions"].value == str(len(report.isotropy.rogue_dimensions)) != "0"
    assert all(isinstance(v, Verdict) and v.meaning and v.advice and v.threshold for v in found.values())


def test_text_json_and_html_show_the_same_verdicts(report):
    listed = report.verdicts()
    text = repr(report)
    assert text.startswith("Verdicts:") and all(repr(v) in text for v in listed)
    as_json = json.loads(json.dumps(report.to_dict(), allow_nan=False))["verdicts"]
    assert [v["title"] for v in as_json] == [v.title for v in listed]
    assert [v["status"] for v in as_json] == [v.status for v in listed]
    page = report.to_html()
    assert page.count("class='embgeo-card ") == len(listed) and "Threshold:" in page
    assert verdicts_html(listed, style=False) in page


def test_the_dashboard_overview_shows_these_verdicts(report):
    from embgeo.widgets import DashboardController

    x = make_anisotropic(600, 24, n_rogue=2, random_state=0)
    cards = DashboardController(x, k=5).cards()
    same = verdicts(isotropy=report.isotropy, hubness=report.hubness, intrinsic_dimension=None)
    assert [(c.title, c.value, c.status) for c in cards[:5]] == [(v.title, v.value, v.status) for v in same]
