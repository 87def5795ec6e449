"""The Compare tab's representation-similarity block, headless: the rows equal the comparison's
similarity, known answers on a rotation, the CCA note when n <= d_A + d_B, and no block for other items."""

import html
import re

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from embgeo.analysis import EmbeddingSet, compare
from embgeo.analysis.datasets import make_anisotropic
from embgeo.widgets import Dashboard
from embgeo.widgets._compare_view import SIMILARITY_ROWS
from embgeo.widgets._html import format_number
from embgeo.widgets._options import TABS


def similarity_rows(page: str) -> dict[str, str]:
    table = re.search(r"<table class='[^']*embgeo-similarity'>(.*?)</table>", page, re.S).group(1)
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        if cells:
            rows[re.sub(r" \(k = \d+\)$", "", cells[0])] = cells[1]
    return rows


def _run(a, b) -> Dashboard:
    d = Dashboard(a, compare_with=b, background=False)
    d.tabs.selected_index = TABS.index("Compare")
    d.compare_run.click()
    assert d.error.value == "", d.error.value
    return d


@pytest.fixture(scope="module")
def pair():
    a = EmbeddingSet(make_anisotropic(300, 16, n_rogue=1, random_state=0), name="A")
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    noisy = EmbeddingSet((a.vectors @ q + rng.normal(scale=0.05, size=a.vectors.shape)).astype(np.float32), name="B")
    return a, noisy, q


def test_the_block_shows_the_comparisons_similarity(pair):
    a, b, _ = pair
    d = _run(a, b)
    page = d.compare_page.value
    assert "Representation similarity</b> of the same 300 items (16 vs 16 dims" in page
    direct = compare(a, b, metric="cosine", k=d.controller.k).similarity.to_dict()
    rows = similarity_rows(page)
    assert list(rows) == [name for _, name, _ in SIMILARITY_ROWS]
    for key, name, _ in SIMILARITY_ROWS:
        assert rows[name] == format_number(direct[key]), name
    assert d.compare_similarity.to_dict()["linear_cka"] == direct["linear_cka"]
    assert page.index("embgeo-compare") < page.index("embgeo-similarity")  # beside the geometry table
    d.close()


def test_a_rotation_gives_cka_one_and_procrustes_zero(pair):
    a, _, q = pair
    rotated = EmbeddingSet((a.vectors.astype(np.float64) @ q).astype(np.float32), name="rotated")
    d = _run(a, rotated)
    sim = d.compare_similarity
    assert sim.linear_cka == pytest.approx(1.0, abs=1e-5) and sim.procrustes_distance == pytest.approx(0.0, abs=2e-3)
    assert sim.mutual_knn == pytest.approx(1.0)
    # scipy's orthogonal Procrustes on the centred, unit-Frobenius rows finds the same (zero) residual
    x, y = (np.asarray(s.vectors, np.float64) for s in (a, rotated))
    x, y = ((m - m.mean(0)) / np.linalg.norm(m - m.mean(0)) for m in (x, y))
    r, _ = orthogonal_procrustes(y, x)
    assert np.linalg.norm(x - y @ r) == pytest.approx(sim.procrustes_distance, abs=2e-3)
    rows = similarity_rows(d.compare_page.value)
    assert rows["linear CKA"] == format_number(sim.linear_cka) and rows["mutual k-NN"] == "1"
    d.close()


def test_too_few_items_for_cca_carry_the_note():
    rng = np.random.default_rng(0)
    a = EmbeddingSet(rng.normal(size=(40, 24)).astype(np.float32), name="A")
    b = EmbeddingSet(rng.normal(size=(40, 24)).astype(np.float32), name="B")
    d = _run(a, b)
    page = html.unescape(d.compare_page.value)
    assert "d_A + d_B = 48 >= n = 40" in page and "read CKA instead" in page
    d.close()


def test_different_items_show_no_similarity_block(clustered):
    d = _run(clustered, clustered.vectors[:120])
    assert d.compare_similarity is None and "embgeo-similarity" not in d.compare_page.value
    assert "different numbers of items" in d.compare_page.value
    d.close()
