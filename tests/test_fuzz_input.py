"""Property-based fuzz of the input path (issue 15): any array through ``load`` and every report or
transform gives a result whose numbers are all finite, or an :class:`EmbeddingInputError`; never another
exception, never a NaN or inf passed off as a result, never a change to the input.

Shapes, dtypes, magnitudes (1e-60 to 1e60), duplicated rows, zero rows and weights are drawn by
hypothesis; the examples are kept small so the whole file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from embgeo.analysis import (
    TRANSFORMS,
    EmbeddingInputError,
    geometry_report,
    hubness_report,
    intrinsic_dimension,
    isotropy_report,
    load,
)

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.uint8]
#: Powers of ten: mostly ordinary scales (so most draws reach the reports), then float16's, float32's and
#: float64's edges.
MAGNITUDES = [0, 0, 0, 0, 1, -1, 2, -3, 4, -6, 17, 19, -20, -25, 39, -46, 300, -320]


@st.composite
def embeddings(draw):
    """An (n, d) array: Gaussian rows of one dtype and magnitude, some rows duplicated or zeroed."""
    n = draw(st.one_of(st.integers(1, 8), st.integers(9, 70), st.integers(9, 70)))
    d = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    if np.dtype(dtype).kind == "f":
        x = x * 10.0 ** draw(st.sampled_from(MAGNITUDES))
    else:
        x = np.clip(np.round(x * 20), np.iinfo(dtype).min, np.iinfo(dtype).max)
    share_dup = draw(st.sampled_from([0.0, 0.3, 0.9, 1.0]))
    if share_dup and n > 1:
        copies = rng.random(n) < share_dup
        x[copies] = x[rng.integers(0, max(1, n // 3), size=int(copies.sum()))]
    if draw(st.integers(0, 3)) == 0:
        x[rng.random(n) < 0.1] = 0
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        x = x.astype(dtype)
    weights = draw(st.sampled_from([None, "uniform", "zipf", "huge", "tiny"]))
    if weights == "uniform":
        weights = np.ones(n)
    elif weights == "zipf":
        weights = 1.0 / np.arange(1, n + 1)
    elif weights == "huge":
        weights = np.full(n, 1e308)
    elif weights == "tiny":
        weights = np.full(n, 1e-320)
    return x, weights


def _nonfinite(value, path=""):
    """Paths of the NaN or inf floats in a ``to_dict()`` tree."""
    if isinstance(value, dict):
        for key, v in value.items():
            yield from _nonfinite(v, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _nonfinite(v, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield path


REPORTS = {
    "geometry_report": lambda es: geometry_report(es, k=3, sample=20, scale_levels=1),
    "isotropy_report": isotropy_report,
    "intrinsic_dimension": lambda es: intrinsic_dimension(es, k=3, scale_levels=1),
    "hubness_report": lambda es: hubness_report(es, k=3),
}


def _run(entry, *args):
    """``entry(*args)``, or None when it refused the input with an EmbeddingInputError."""
    try:
        return entry(*args)
    except EmbeddingInputError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("refused: " + " ".join(str(exc).split()[1:6]))
        return None


@FUZZ
@given(embeddings(), st.sampled_from(sorted(REPORTS)))
def test_load_and_every_report_give_finite_numbers_or_a_clear_error(drawn, report):
    x, weights = drawn
    before = x.copy()
    es = _run(lambda: load(x, weights=weights))
    if es is not None:
        result = _run(REPORTS[report], es)
        event(f"{report}: {'result' if result is not None else 'refused'}")
        if result is not None:
            assert not list(_nonfinite(result.to_dict())), f"{report}: non-finite {list(_nonfinite(result.to_dict()))}"
    np.testing.assert_array_equal(x, before)


@FUZZ
@given(embeddings(), st.sampled_from(sorted(TRANSFORMS)))
def test_every_transform_gives_finite_vectors_or_a_clear_error(drawn, method):
    x, weights = drawn
    before = x.copy()
    kwargs = {"sample_weight": weights} if method == "zipfian" and weights is not None else {}
    out = _run(lambda: TRANSFORMS[method]().fit_transform(x, **kwargs))
    if out is not None:
        out = np.asarray(out)
        assert out.shape[0] == x.shape[0] and np.isfinite(out).all(), f"{method}: non-finite output"
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("report", sorted(REPORTS))
def test_the_fuzz_can_fail(report):
    """The property is not vacuous: typical draws give a result, which the check then reads."""
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    result = REPORTS[report](load(x))
    assert result.to_dict() and not list(_nonfinite(result.to_dict()))
    assert list(_nonfinite({"a": [1.0, {"b": float("nan")}]})) == [".a[1].b"]
