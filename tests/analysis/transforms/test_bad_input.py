"""Bad input to the post-processing transforms (issue 15: defects 2, 3, 4, 5 and 7).

Every transform of the registry accepts exactly what ``load`` accepts and refuses the rest with a
one-line :class:`EmbeddingInputError` that names the estimator; data without variance is refused by
the whitenings instead of being whitened into noise; the output is finite or the call raises; ``eps``
outside its range is refused, by the estimator and so by ``embgeo transform`` (exit 2). No numpy
RuntimeWarning escapes: every test here turns one into an error.
"""

from __future__ import annotations

import numpy as np
import pytest

import embgeo._commands_transform  # noqa: F401  (registers ``embgeo transform``)
from embgeo.analysis import EmbeddingInputError, apply_transform, load
from embgeo.analysis.transforms import TRANSFORMS, RogueDimensions, Whitening
from embgeo.cli import main

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

ALL = sorted(TRANSFORMS)
#: The transforms that rescale by the fitted variance.
WHITENINGS = ["pca-whiten", "zca", "zipfian", "phis"]
#: Those that take ``eps``.
WITH_EPS = ["pca-whiten", "zca", "zipfian"]
#: The class name each registry entry builds (the messages name it).
CLASS = {name: type(make()).__name__ for name, make in TRANSFORMS.items()}


def gauss(n=200, d=8, seed=0, scale=1.0, offset=2.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + offset


def identical_rows(n=300, d=8):
    return np.tile(gauss(1, d), (n, 1)).astype(np.float32)


def refused(run, *words):
    """Run ``run()``, expect an EmbeddingInputError of one short line holding ``words``; its text."""
    with pytest.raises(EmbeddingInputError) as err:
        run()
    message = str(err.value)
    assert "\n" not in message and len(message) < 400 and "array=" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


def snapshot(x):
    return x.copy(), x.shape, x.flags.writeable


def assert_unchanged(x, snap):
    values, shape, writeable = snap
    assert x.shape == shape and x.flags.writeable == writeable
    np.testing.assert_array_equal(x, values)


# --------------------------------------------------------------------------------------------- defect 2


@pytest.mark.parametrize("method", WHITENINGS)
def test_identical_rows_are_refused_by_the_whitenings(method):
    # 300 identical rows: the rounding of the mean left a top eigenvalue of ~1e-29, which passed the
    # absolute "lam[0] <= 0" test, and the rows were whitened into unit-scale noise.
    x = identical_rows()
    snap = snapshot(x)
    refused(lambda: TRANSFORMS[method]().fit(x), CLASS[method], "all rows are identical",
            "no variance to whiten")
    assert_unchanged(x, snap)


@pytest.mark.parametrize("method", WHITENINGS)
def test_variance_below_float_precision_is_refused_and_small_real_variance_is_not(method):
    base = gauss(1, 8)
    noise = np.random.default_rng(1).normal(size=(300, 8))
    below = base * (1 + 1e-9 * noise)  # spread 1e-9 of the scale: float32 cannot even tell the rows apart
    refused(lambda: TRANSFORMS[method]().fit(below), "no variance to whiten")
    small = base + 1e-3 * noise  # a small but real spread is whitened as usual
    z = TRANSFORMS[method]().fit_transform(small)
    np.testing.assert_allclose(np.var(z.astype(np.float64), axis=0), 1.0, atol=1e-2)


def test_rogue_standardize_leaves_constant_dimensions_at_zero():
    # Identical rows (and a column of 0.1, whose float64 mean rounds) have nothing to standardise:
    # the output must be 0 there, not the rounding of the mean divided by itself.
    z = RogueDimensions(mode="standardize").fit_transform(identical_rows())
    np.testing.assert_array_equal(z, 0.0)
    x = gauss(300, 8)
    x[:, 3] = 0.1
    z = RogueDimensions(mode="standardize").fit_transform(x)
    np.testing.assert_array_equal(z[:, 3], 0.0)
    np.testing.assert_allclose(np.delete(z, 3, axis=1).std(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("method", ["center", "abtt"])
def test_centring_identical_rows_gives_exact_zeros(method):
    # The rounding of the float64 mean left ~1e-15 (centring) or ~1e-30 (all-but-the-top) in every
    # entry: not zero vectors but tiny ones, which the output set then refused as too small.
    x = identical_rows()
    np.testing.assert_array_equal(TRANSFORMS[method]().fit_transform(x), 0.0)
    two = gauss(2, 8)  # after centring, two rows span one direction, which all-but-the-top removes
    expected = 0.0 if method == "abtt" else two - two.mean(axis=0)
    np.testing.assert_allclose(TRANSFORMS[method](**({"n_components": 1} if method == "abtt" else {}))
                               .fit_transform(two), expected, atol=0, rtol=1e-6)


# --------------------------------------------------------------------------------------------- defect 3


@pytest.mark.parametrize("method", ALL)
def test_a_tensor_that_requires_grad_is_detached_as_load_does(method):
    torch = pytest.importorskip("torch")
    x = gauss(100, 8).astype(np.float32)
    t = torch.tensor(x, requires_grad=True)
    z = TRANSFORMS[method]().fit_transform(t)
    np.testing.assert_allclose(z, TRANSFORMS[method]().fit_transform(x), rtol=1e-6, atol=1e-6)
    assert t.requires_grad and torch.equal(t.detach(), torch.from_numpy(x))  # the tensor is untouched
    est = TRANSFORMS[method]().fit(x)
    np.testing.assert_allclose(est.transform(t), est.transform(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ALL)
def test_a_dict_is_refused_with_the_estimators_name(method):
    refused(lambda: TRANSFORMS[method]().fit({"vectors": [[1.0, 2.0], [3.0, 4.0]]}), CLASS[method], "not numeric")
    holding = gauss(40, 4).astype(object)
    holding[5, 1] = {"foo": "bar"}
    refused(lambda: TRANSFORMS[method]().fit(holding), CLASS[method], "not numeric")
    est = TRANSFORMS[method]().fit(gauss(40, 4))
    refused(lambda: est.transform(holding), CLASS[method], "not numeric")


# --------------------------------------------------------------------------------------------- defect 4


@pytest.mark.parametrize("method", ALL)
def test_values_beyond_float32_are_refused_naming_the_rows(method):
    # Center, AllButTheTop and RogueDimensions returned 72-74 % inf for such data; the others
    # silently cast it.
    x = gauss(200, 8)
    x[[3, 17], 2] = 1e39
    snap = snapshot(x)
    refused(lambda: TRANSFORMS[method]().fit(x), CLASS[method], "[3, 17]", "float32")
    assert_unchanged(x, snap)
    est = TRANSFORMS[method]().fit(gauss(200, 8))
    refused(lambda: est.transform(x), CLASS[method], "[3, 17]", "float32")
    assert_unchanged(x, snap)


def test_an_output_beyond_float32_is_refused_naming_the_rows():
    # A dimension of standard deviation 1e-25 is standardised by 1e25: rows holding 1e15 there land at
    # 1e40, beyond float32 (they were written as inf, with an overflow RuntimeWarning).
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=(500, 1)) * 1e-25, rng.normal(size=(500, 3)) + 1.0]
    est = RogueDimensions(mode="standardize").fit(x)
    queries = x[:12].copy()
    queries[[4, 9], 0] = 1e15
    refused(lambda: est.transform(queries), "RogueDimensions", "2 of 12 rows", "[4, 9]", "float32")
    assert np.isfinite(est.transform(x[:12])).all()


def test_an_output_set_that_cannot_be_analysed_is_named_as_the_output():
    # Centring tiny-scale data leaves a row next to the mean below float32's precision; the output set
    # refused it as "vectors: ...", which read as if the caller's vectors were at fault.
    x = gauss(200, 8, offset=0.0) * 1e-14
    x[7] = x.mean(axis=0) + 1e-17
    message = refused(lambda: apply_transform(x, "center"), "the 'center' output of", "[7]")
    assert message.startswith("the 'center' output")


# --------------------------------------------------------------------------------------------- defect 5


@pytest.mark.parametrize("eps", [np.inf, 1e300, 2.0])
@pytest.mark.parametrize("method", WITH_EPS)
def test_eps_outside_its_range_is_refused(method, eps):
    # eps is relative to the largest eigenvalue: inf or 1e300 made every output 0.
    refused(lambda: TRANSFORMS[method](eps=eps).fit(gauss()), "eps must be a finite number between 0 and 1")


@pytest.mark.parametrize("eps", [0.0, 1e-300])
@pytest.mark.parametrize("method", ["pca", "zca"])
def test_eps_too_small_for_directions_without_variance_is_refused(method, eps):
    # 5 rows in 32 dimensions: 28 directions have no variance; eps=0 divided by zero (NaN output),
    # eps=1e-300 scaled rounding noise past float32 (inf output).
    wide = gauss(5, 32)
    refused(lambda: Whitening(method=method, eps=eps).fit(wide), "rank 4 of 32", "eps")
    z = Whitening(method=method, eps=eps, n_components=4).fit_transform(wide)  # the 4 real directions
    assert np.isfinite(z).all()
    z = Whitening(method=method, eps=0.0).fit_transform(gauss(500, 8))  # full rank: exact whitening
    np.testing.assert_allclose(np.cov(z.astype(np.float64).T, bias=True), np.eye(8), atol=1e-4)


# --------------------------------------------------------------------------------------------- defect 7


LOAD_REFUSES = {
    "bool": lambda: gauss() > 2.0,
    "numeric strings": lambda: gauss().round(2).astype(str),
    "float64 below float32's smallest number": lambda: gauss(offset=0.0) * 1e-46,
    "float32 at 1e19": lambda: (gauss() * 1e19).astype(np.float32),
    "float32 at 1e-25": lambda: (gauss() * 1e-25).astype(np.float32),
}


@pytest.mark.parametrize("case", sorted(LOAD_REFUSES))
@pytest.mark.parametrize("method", ALL)
def test_what_load_refuses_every_transform_refuses(method, case):
    x = LOAD_REFUSES[case]()
    snap = snapshot(x)
    with pytest.raises(EmbeddingInputError) as by_load:
        load(x)
    # The same check words both messages: load's names the vectors, the transform's the estimator.
    expected = str(by_load.value).replace("vectors", f"{CLASS[method]} input", 1)
    assert refused(lambda: TRANSFORMS[method]().fit(x)) == expected
    est = TRANSFORMS[method]().fit(gauss())
    assert refused(lambda: est.transform(x)) == expected
    assert_unchanged(x, snap)


@pytest.mark.parametrize("case, words", [
    ("1-D", ("2-D", "got 1-D")),
    ("complex", ("complex128", "Complex data not supported")),
    ("scalar", ("2-D", "0-D")),
])
@pytest.mark.parametrize("method", ALL)
def test_messages_are_one_line_without_the_array(method, case, words):
    # scikit-learn's messages pasted the whole array for these (400 characters for 50 numbers).
    x = {"1-D": np.arange(50.0), "complex": gauss(50, 3) * (1 + 1j), "scalar": np.float64(3.0)}[case]
    refused(lambda: TRANSFORMS[method]().fit(x), CLASS[method], *words)
    est = TRANSFORMS[method]().fit(gauss(50, 3))
    refused(lambda: est.transform(x), CLASS[method], *words)


# --------------------------------------------------------------------------------------------- the CLI


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def assert_refused_by_cli(code, err, path, before, out, *words):
    assert code == 2, err
    assert err.startswith("embgeo: error:") and "\n" not in err and "Traceback" not in err, err
    assert "Warning" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert path.read_bytes() == before  # the input file keeps its bytes
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("method", WHITENINGS)
def test_cli_refuses_identical_rows(method, tmp_path, capsys):
    path = tmp_path / "identical.npz"
    np.savez(path, vectors=identical_rows(), weights=np.arange(1.0, 301.0))  # zipfian needs weights
    before, out = path.read_bytes(), tmp_path / "out.npy"
    code, err = run_cli(["transform", path, out, "--method", method], capsys)
    assert_refused_by_cli(code, err, path, before, out, CLASS[method], "no variance to whiten")


@pytest.mark.parametrize("method", ["center", "abtt"])
def test_cli_centres_identical_rows_to_zero_vectors(method, tmp_path, capsys):
    path = tmp_path / "identical.npy"
    np.save(path, identical_rows())
    out = tmp_path / "out.npy"
    code, err = run_cli(["transform", path, out, "--method", method], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(out), 0.0)


@pytest.mark.parametrize("eps", ["inf", "1e300", "5"])
def test_cli_refuses_eps_outside_its_range(eps, tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, gauss().astype(np.float32))
    before, out = path.read_bytes(), tmp_path / "out.npy"
    code, err = run_cli(["transform", path, out, "--method", "zca", "--eps", eps], capsys)
    assert_refused_by_cli(code, err, path, before, out, "eps must be a finite number between 0 and 1")


def test_cli_refuses_eps_too_small_for_wide_data_without_warnings(tmp_path, capsys):
    # 5 rows in 32 dimensions with --eps 1e-300: overflow RuntimeWarnings on stderr and inf written.
    path = tmp_path / "wide.npy"
    np.save(path, gauss(5, 32).astype(np.float32))
    before, out = path.read_bytes(), tmp_path / "out.npy"
    code, err = run_cli(["transform", path, out, "--method", "pca-whiten", "--eps", "1e-300"], capsys)
    assert_refused_by_cli(code, err, path, before, out, "rank 4 of 32", "eps")
