"""Synthetic generators hold their planted answers; bundled samples load with the right shape."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from embgeo.analysis import EmbeddingInputError, exact_knn
from embgeo.analysis import datasets as D

GENERATORS = [
    lambda seed: D.make_sphere(300, 3, 20, random_state=seed),
    lambda seed: D.make_subspace(300, 4, 20, random_state=seed),
    lambda seed: D.make_isotropic_gaussian(300, 20, random_state=seed),
    lambda seed: D.make_anisotropic(300, 20, random_state=seed),
    lambda seed: D.make_planted_hubs(300, 20, 3, random_state=seed)[0],
]


@pytest.mark.parametrize("make", GENERATORS)
def test_float32_shape_and_seeded(make):
    a, b, c = make(0), make(0), make(1)
    assert a.dtype == np.float32 and a.shape == (300, 20)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.isfinite(a).all()


def test_generator_accepts_a_numpy_generator():
    x1 = D.make_isotropic_gaussian(10, 3, random_state=np.random.default_rng(5))
    x2 = D.make_isotropic_gaussian(10, 3, random_state=5)
    assert np.array_equal(x1, x2)


def test_random_orthonormal_rows_are_orthonormal():
    q = D.random_orthonormal(40, 7, np.random.default_rng(0))
    assert q.shape == (7, 40)
    np.testing.assert_allclose(q @ q.T, np.eye(7), atol=1e-12)


def test_sphere_embedding_is_an_isometry():
    # Rebuild the points in R^(k+1) from the same seed: pairwise distances must match exactly.
    k, d = 2, 30
    x = D.make_sphere(200, k, d, random_state=3).astype(np.float64)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((200, k + 1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(pdist(x), pdist(z), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # The points span exactly k + 1 dimensions of R^d.
    assert np.linalg.matrix_rank(x, tol=1e-4) == k + 1


def test_sphere_is_uniform_first_moments():
    x = D.make_sphere(20000, 2, 10, random_state=0).astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    # Uniform on S^2: second moment matrix in its own 3-D span is I/3, so the trace is 1, top-3 eigenvalues 1/3.
    eig = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))[::-1]
    np.testing.assert_allclose(eig[:3], 1 / 3, atol=0.02)
    np.testing.assert_allclose(eig[3:], 0.0, atol=1e-6)


def test_subspace_rank_is_k_and_offset_keeps_origin_away():
    k = 5
    x = D.make_subspace(500, k, 40, offset=2.0, random_state=1).astype(np.float64)
    centred = x - x.mean(axis=0)
    assert np.linalg.matrix_rank(centred, tol=1e-4) == k
    assert np.linalg.matrix_rank(x, tol=1e-4) == k + 1  # affine, not linear
    # The offset is orthogonal to the cube: every point is at least `offset` from the origin.
    assert np.linalg.norm(x, axis=1).min() >= 2.0 - 1e-5
    # Uniform on [-1/2, 1/2]^k: variance 1/12 along each of the k axes, so total variance k / 12.
    assert np.trace(np.cov(centred.T)) == pytest.approx(k / 12, rel=0.05)


def test_noise_fills_the_ambient_space():
    x = D.make_subspace(200, 3, 20, noise=0.01, random_state=0)
    assert np.linalg.matrix_rank(x - x.mean(axis=0), tol=1e-4) == 20


def test_isotropic_gaussian_covariance_is_identity():
    x = D.make_isotropic_gaussian(20000, 10, random_state=0).astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), np.eye(10), atol=0.05)


def test_anisotropic_truth_matches_sample_moments():
    x, truth = D.make_anisotropic(40000, 16, mean_norm=1.5, spectrum_exponent=1.2, n_rogue=3,
                                  rogue_scale=3.0, random_state=0, return_truth=True)
    x = x.astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), truth.mean, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), truth.covariance, atol=0.01)
    # Spectrum: exact power law with the requested exponent and trace.
    lam = truth.eigenvalues
    assert lam.sum() == pytest.approx(1.0)
    ratios = lam[:-1] / lam[1:]
    ks = np.arange(1, 16)
    np.testing.assert_allclose(ratios, ((ks + 1) / ks) ** 1.2)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1], lam, rtol=0.1, atol=2e-3)
    # Rogue dimensions: the three largest |mean| coordinates, each carrying the planted offset.
    assert len(truth.rogue_dims) == 3
    assert set(np.argsort(-np.abs(x.mean(axis=0)))[:3]) == set(truth.rogue_dims)
    np.testing.assert_allclose(np.abs(truth.rogue_offsets), 3.0)
    # The common direction is a unit vector orthogonal to the rogue axes, with norm mean_norm.
    assert np.linalg.norm(truth.mean_direction) == pytest.approx(1.0)
    assert np.all(truth.mean_direction[list(truth.rogue_dims)] == 0)
    np.testing.assert_allclose(truth.principal_axes @ truth.principal_axes.T, np.eye(16), atol=1e-12)


def test_anisotropic_rogue_dims_dominate_expected_cosine():
    # Timkey & van Schijndel (2021): dimension j contributes E[u_j]^2 to the expected cosine.
    x, truth = D.make_anisotropic(5000, 64, n_rogue=2, rogue_scale=3.0, random_state=2, return_truth=True)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    share = u.mean(axis=0) ** 2
    share /= share.sum()
    assert set(np.argsort(-share)[:2]) == set(truth.rogue_dims)
    assert share[list(truth.rogue_dims)].sum() > 0.8


def test_anisotropic_exponent_zero_is_isotropic_and_no_truth_by_default():
    x = D.make_anisotropic(100, 8, spectrum_exponent=0.0, n_rogue=0, random_state=0)
    assert isinstance(x, np.ndarray)
    _, truth = D.make_anisotropic(100, 8, spectrum_exponent=0.0, n_rogue=0, random_state=0, return_truth=True)
    np.testing.assert_allclose(truth.eigenvalues, 1 / 8)
    assert truth.rogue_dims == ()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_planted_hubs_have_top_k_occurrence(metric):
    n_hubs, k = 4, 10
    x, hubs = D.make_planted_hubs(1200, 32, n_hubs, random_state=0)
    assert hubs.shape == (n_hubs,) and hubs.dtype == np.int64
    nk = np.bincount(exact_knn(x, k=k, metric=metric).indices.ravel(), minlength=len(x))
    top = np.sort(np.argsort(-nk)[:n_hubs])
    assert np.array_equal(top, hubs)
    # Each hub is a neighbour of nearly every member of its cluster ((1200 - 4) / 4 = 299 members).
    assert nk[hubs].min() > 0.9 * 299
    others = np.delete(nk, hubs)
    assert others.max() < nk[hubs].min() / 2


@pytest.mark.parametrize("call, match", [
    (lambda: D.make_sphere(10, 3, 3), "at least 4"),
    (lambda: D.make_sphere(0, 3, 10), "n must be at least 1"),
    (lambda: D.make_sphere(10, 2.5, 10), "intrinsic_dim must be an integer"),
    (lambda: D.make_subspace(10, 3, 3), "ambient_dim >= 4"),
    (lambda: D.make_subspace(10, 2, 5, offset=0), "offset must be > 0"),
    (lambda: D.make_sphere(10, 2, 5, noise=-1), "noise must be"),
    (lambda: D.make_anisotropic(10, 4, n_rogue=4), "n_rogue must be at most"),
    (lambda: D.make_anisotropic(10, 4, spectrum_exponent=float("nan")), "spectrum_exponent"),
    (lambda: D.make_planted_hubs(5, 10, 3), "at least 2 \\* n_hubs"),
    (lambda: D.make_isotropic_gaussian(10, True), "dim must be an integer"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(EmbeddingInputError, match=match):
        call()


# ------------------------------------------------------------------------------------ samples
def test_list_samples_and_unknown_name():
    assert set(D.list_samples()) == {"words", "sentences", "sentences_mpnet"}
    with pytest.raises(EmbeddingInputError, match="known samples: sentences, sentences_mpnet, words"):
        D.load_sample("glove")


def test_words_sample():
    words = D.load_sample("words")
    assert words.name == "words"
    assert words.vectors.shape == (20000, 384) and words.vectors.dtype == np.float32
    assert set(words.metadata.columns) == {"text", "frequency"}
    text = words.texts
    assert text[:3] == ["the", "to", "and"] and len(set(text)) == len(text)
    # Weights are the wordfreq frequencies, positive and in rank order.
    assert (words.weights > 0).all()
    np.testing.assert_array_equal(words.weights, words.metadata["frequency"].to_numpy())
    assert (np.diff(words.weights) <= 0).all()
    # Stored unit vectors survive float16 rounding to within ~1e-4.
    np.testing.assert_allclose(np.linalg.norm(words.vectors, axis=1), 1.0, atol=1e-3)
    # Rows line up with their words: a weekday is closer to another weekday than to unrelated words.
    row = {w: i for i, w in enumerate(text)}
    v = words.vectors
    sims = {w: float(v[row["monday"]] @ v[row[w]]) for w in ("tuesday", "banana", "government", "the")}
    assert max(sims, key=sims.get) == "tuesday"


def test_sentences_sample():
    sentences = D.load_sample("sentences")
    assert sentences.dim == 384 and 5000 <= sentences.n <= 10000
    assert sentences.weights is None
    meta = sentences.metadata
    assert {"text", "label", "source"} <= set(meta.columns)
    assert meta["label"].str.len().min() > 0 and meta["label"].nunique() > 50
    assert meta["text"].str.lower().is_unique
    # Every source is a dotted name inside its labelled top-level module; rows are sorted by it.
    assert all(s.split(".")[0] == lab for s, lab in zip(meta["source"], meta["label"]))
    assert list(meta["label"]) == sorted(meta["label"])
    np.testing.assert_allclose(np.linalg.norm(sentences.vectors, axis=1), 1.0, atol=1e-3)


def test_mpnet_sample_is_a_second_model_over_the_same_sentences():
    mpnet, minilm = D.load_sample("sentences_mpnet"), D.load_sample("sentences")
    assert mpnet.vectors.shape == (2000, 768) and mpnet.vectors.dtype == np.float32
    assert mpnet.weights is None
    np.testing.assert_allclose(np.linalg.norm(mpnet.vectors, axis=1), 1.0, atol=1e-3)
    rows = mpnet.metadata["row"].to_numpy()
    assert rows.dtype.kind == "i" and (np.diff(rows) > 0).all() and rows[-1] < minilm.n
    aligned = D.load_sample("sentences", items_of="sentences_mpnet")
    np.testing.assert_array_equal(aligned.vectors, minilm.vectors[rows])
    with pytest.raises(EmbeddingInputError, match="not a subset of sample 'words'"):
        D.load_sample("words", items_of="sentences_mpnet")
    for column in ("text", "label", "source"):
        assert list(aligned.metadata[column]) == list(mpnet.metadata[column])
    # The rows carry their own sentences: each row's nearest other sentence under MiniLM is, far
    # more often than chance (about 1 in 2,000), among its 10 nearest under mpnet.
    a, b = aligned.vectors, mpnet.vectors
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -np.inf), np.fill_diagonal(sb, -np.inf)
    top_b = np.argsort(-sb, axis=1)[:, :10]
    hit = (top_b == np.argmax(sa, axis=1)[:, None]).any(axis=1).mean()
    assert hit > 0.3


def test_samples_are_fresh_objects():
    a, b = D.load_sample("sentences"), D.load_sample("sentences")
    assert a is not b and not a.vectors.flags.writeable
    np.testing.assert_array_equal(a.vectors, b.vectors)


def _build_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "scripts" / "build_samples.py"
    spec = importlib.util.spec_from_file_location("build_samples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("doc, expected", [
    ("Return the sum of a and b.  More text follows here.", "Return the sum of a and b."),
    ("Split the string\n    on whitespace into words.\n\n    Details.", "Split the string on whitespace into words."),
    ("Compute e.g. the ratio of x to y. Then more.", "Compute e.g. the ratio of x to y."),
    ("split(sep) -> list of strings", None),            # old signature line
    (">>> f(1)\n2", None),                              # doctest
    ("Too short.", None),
    ("", None),
    (None, None),
])
def test_first_sentence_rules(doc, expected):
    assert _build_script().first_sentence(doc) == expected
