"""Lying and broken files (issue 15): every one is refused by name, through ``load`` and the CLI.

Each case writes a file that is wrong in one way and checks that ``load`` raises
:class:`EmbeddingInputError` whose one-line message names the file and the problem, that
``embgeo report FILE`` exits 2 with that one line on stderr (no traceback), and that the file's bytes
are unchanged. None of these may hang, leak a file handle or give a silently wrong result.
"""

from __future__ import annotations

import gc
import os
import signal
import warnings
import zipfile

import h5py
import numpy as np
import pandas as pd
import pytest

from embgeo import cli
from embgeo.analysis import EmbeddingInputError, EmbeddingSet, ground_truth
from embgeo.analysis.io import load

N, D = 40, 6


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)


@pytest.fixture(autouse=True)
def _no_hang():
    """Reading a FIFO or /dev/zero must not block or read forever: fail after 30 s instead."""
    def stuck(signum, frame):
        raise TimeoutError("the loader hung")

    old = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _bytes(path):
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def _refused(path, *words, capsys=None, **kw):
    """``load(path)`` raises EmbeddingInputError naming the path and ``words``; the file is unchanged.

    With ``capsys``, ``embgeo report path`` must also exit 2 with the same one line on stderr."""
    before = _bytes(path)
    with pytest.raises(EmbeddingInputError) as info:
        load(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    for w in words:
        assert w in msg, msg
    if capsys is not None:
        capsys.readouterr()
        assert cli.main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("embgeo: error:") and str(path) in err, err
        for w in words:
            assert w in err, err
    assert _bytes(path) == before
    return msg


def _ann_file(path, train, *, neighbors=None, distances=None, test=True, **extra):
    with h5py.File(path, "w") as f:
        if train is not None:
            f.create_dataset("train", data=train)
        if test:
            f.create_dataset("test", data=train[:4] + 0.25 if train is not None else np.ones((4, D), "f4"))
        if neighbors is not None:
            f.create_dataset("neighbors", data=neighbors)
            f.create_dataset("distances", data=np.ones(np.shape(neighbors), "f4") if distances is None
                             else distances)
        for k, v in extra.items():
            f.create_dataset(k, data=v)
        f.attrs["distance"] = "angular"
    return path


# ----------------------------------------------------------------------------------- weights (3, 5)


@pytest.mark.parametrize("key", ["weights", "frequencies"])
def test_npz_weights_holding_strings(tmp_path, x, capsys, key):
    path = tmp_path / "w.npz"
    np.savez(path, vectors=x, **{key: np.array([f"w{i}" for i in range(N)])})
    _refused(path, repr(key), "not numbers", capsys=capsys)


def test_string_weights_in_memory(x):
    with pytest.raises(EmbeddingInputError, match="not numbers"):
        EmbeddingSet(x, weights=["a"] * N)
    with pytest.raises(EmbeddingInputError, match="not numbers"):
        load(x, weights=np.array(["1"] * N))  # numeric text is still text


def test_weights_of_shape_half_n_by_2_are_refused_and_n_by_1_accepted(tmp_path, x, capsys):
    w = np.arange(1, N + 1, dtype=np.float64)
    with pytest.raises(EmbeddingInputError, match=r"shape \(20, 2\)"):
        load(x, weights=w.reshape(N // 2, 2))
    np.testing.assert_allclose(load(x, weights=w[:, None]).probabilities, w / w.sum())
    path = tmp_path / "w2.npz"
    np.savez(path, vectors=x, weights=w.reshape(N // 2, 2))
    _refused(path, "'weights'", "shape (20, 2)", capsys=capsys)


def test_weights_whose_sum_overflows_are_normalised_exactly(x):
    w = np.full(N, 1e308)
    w[0] = 1.7e308
    given = w.copy()
    s = load(x, weights=w)
    p = s.probabilities
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, given / given.max() / (given / given.max()).sum())
    np.testing.assert_array_equal(w, given)  # the caller's array is untouched


def test_npz_weights_of_the_wrong_length_are_not_dropped(tmp_path, x, capsys):
    path = tmp_path / "short.npz"
    np.savez(path, vectors=x, weights=np.ones(N - 3))
    _refused(path, "'weights'", f"{N - 3} entries", f"{N} vectors", capsys=capsys)


# ----------------------------------------------------------------------------------- .npy sizes (5)


@pytest.mark.parametrize("mmap", [True, False])
def test_npy_holding_more_rows_than_its_header_says(tmp_path, x, capsys, mmap):
    path = tmp_path / "long.npy"
    np.save(path, x)
    with open(path, "ab") as fh:  # 3 more rows of data than the header's shape
        fh.write(np.ones((3, D), dtype=np.float32).tobytes())
    _refused(path, f"({N}, {D})", "longer", capsys=capsys if mmap else None, mmap=mmap)


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_npy_is_named_truncated(tmp_path, x, capsys, mmap):
    path = tmp_path / "cut.npy"
    np.save(path, x)
    path.write_bytes(path.read_bytes()[:-10])
    _refused(path, f"({N}, {D})", "shorter", "truncated", capsys=capsys if mmap else None, mmap=mmap)


def test_npy_shard_longer_than_its_header(tmp_path, x):
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "a.npy", x)
    np.save(shards / "b.npy", x)
    with open(shards / "b.npy", "ab") as fh:
        fh.write(b"\0" * 4 * D)
    with pytest.raises(EmbeddingInputError, match="b.npy.*longer"):
        load(shards)


# ----------------------------------------------------------------------------------- ann-benchmarks (3, 4, 5)


def test_hdf5_with_1d_neighbors(tmp_path, x, capsys):
    path = _ann_file(tmp_path / "a.hdf5", x, neighbors=np.arange(4, dtype=np.int32))
    _refused(path, "'neighbors'", "shape (4,)", capsys=capsys)


@pytest.mark.parametrize("ids, words", [
    (np.full((4, 3), N, dtype=np.int32), ("ids up to 40", f"{N} rows")),
    (np.full((4, 3), -1, dtype=np.int64), ("negative",)),
    (np.zeros((4, 3), dtype=np.float64), ("float64", "integers")),
], ids=["out-of-range", "negative", "float"])
def test_hdf5_ground_truth_ids_must_be_row_numbers(tmp_path, x, capsys, ids, words):
    path = _ann_file(tmp_path / "ids.hdf5", x, neighbors=ids)
    _refused(path, "'neighbors'", *words, capsys=capsys)


def test_hdf5_distances_must_match_the_neighbors(tmp_path, x, capsys):
    path = _ann_file(tmp_path / "d.hdf5", x, neighbors=np.zeros((4, 3), "i4"), distances=np.ones(4, "f4"))
    _refused(path, "'distances'", "shape (4,)", capsys=capsys)


def test_hdf5_with_only_test_is_not_analysed_as_a_corpus(tmp_path, capsys):
    path = _ann_file(tmp_path / "q.hdf5", None, neighbors=np.zeros((4, 3), "i4"))
    _refused(path, "no 'train' dataset", "vectors=", capsys=capsys)


def test_hdf5_without_train_says_so(tmp_path, x, capsys):
    path = _ann_file(tmp_path / "two.hdf5", None, test=False, a=x, b=x)
    _refused(path, "no 'train' dataset", "'a'", "'b'", capsys=capsys)
    np.testing.assert_array_equal(load(path, vectors="a").vectors, x)  # named, it is read


def test_dropping_rows_keeps_the_benchmark_ids_pointing_at_the_same_rows(tmp_path, x):
    x[5, 0] = np.nan
    truth = np.array([[0, 7, 39]] * 4, dtype=np.int32)
    path = _ann_file(tmp_path / "drop.hdf5", x, neighbors=truth)
    s = load(path, on_invalid="drop")
    np.testing.assert_array_equal(s.benchmark.neighbors, [[0, 6, 38]] * 4)
    assert s.benchmark.neighbors[0, 1] == 6 and np.array_equal(s.vectors[6], x[7])
    gt = ground_truth(s, queries="benchmark", k=3)
    assert gt.file_neighbors.shape == (4, 3)
    path = _ann_file(tmp_path / "drop2.hdf5", x, neighbors=np.array([[0, 5, 39]] * 4, dtype=np.int32))
    _refused(path, "row 5", "dropped", on_invalid="drop")


# ----------------------------------------------------------------------------------- CSV (4)


def test_csv_row_with_too_few_fields_is_not_reported_as_nan(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n7,8,9\n1,1,1\n")
    msg = _refused(path, "line 3", "data row 1", "2 fields", "3", capsys=capsys)
    assert "NaN" not in msg.split("fields")[0]


def test_headerless_csv_row_with_too_few_fields(tmp_path):
    path = tmp_path / "nohead.csv"
    path.write_text("1,2,3\n4,5,6\n7,8\n")
    _refused(path, "line 3", "2 fields")


def test_csv_with_an_empty_field_still_reports_the_missing_value(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("a,b,c\n1,2,3\n4,,6\n")
    _refused(path, "NaN")


# ----------------------------------------------------------------------------------- unreadable paths (4)


def test_symlink_loop_is_named(tmp_path, capsys):
    path = tmp_path / "loop.npy"
    path.symlink_to(tmp_path / "loop2.npy")
    (tmp_path / "loop2.npy").symlink_to(path)
    _refused(path, "symbolic link loop", capsys=capsys)


def test_dangling_symlink_names_its_target(tmp_path):
    path = tmp_path / "dangling.npy"
    path.symlink_to(tmp_path / "gone.npy")
    with pytest.raises(FileNotFoundError, match="gone.npy"):
        load(path)


def test_fifo_is_named_and_not_read(tmp_path, capsys):
    path = tmp_path / "pipe.npy"
    os.mkfifo(path)
    _refused(path, "FIFO", capsys=capsys)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_character_device_is_named_and_not_read(tmp_path, capsys):
    path = tmp_path / "zero.npy"
    path.symlink_to("/dev/zero")
    _refused(path, "character device", capsys=capsys)
    _refused(__import__("pathlib").Path("/dev/zero"), "character device")


def test_permission_denied_is_named(tmp_path, x, capsys, monkeypatch):
    from embgeo.analysis.io import formats

    path = tmp_path / "locked.npy"
    np.save(path, x)

    def denied(p, **kw):  # what open() raises for a file without read permission
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setitem(formats.READERS, ".npy", denied)
    _refused(path, "permission denied", capsys=capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real(tmp_path, x):
    path = tmp_path / "locked.npy"
    np.save(path, x)
    path.chmod(0)
    try:
        _refused(path, "permission denied")
    finally:
        path.chmod(0o600)


# ----------------------------------------------------------------------------------- corrupt .npz (7)


def _fds_open_on(path) -> int:
    """This process's file descriptors open on ``path``: counting all of them would also count the
    sockets that other threads of the test session (a Dask cluster's comms) open and close meanwhile."""
    target, n = os.path.realpath(path), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:  # closed since the listing
            pass
    return n


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_corrupt_npz_leaks_no_file_handle(tmp_path, x, cut):
    path = tmp_path / "cut.npz"
    np.savez(path, vectors=x)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(EmbeddingInputError, match="truncated or corrupt"):
            load(path)
        assert _fds_open_on(path) == 0  # closed by the loader, not left to the garbage collector
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_npz_member_that_is_not_an_array(tmp_path, capsys):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("vectors.npy", b"not an array at all")
    _refused(path, "'vectors'", "not a .npy array", capsys=capsys)


def test_metadata_from_npz_still_loads(tmp_path, x):
    """The weight checks do not catch well-formed files: weights and metadata columns still load."""
    path = tmp_path / "good.npz"
    w = np.arange(1, N + 1)
    np.savez(path, vectors=x, frequencies=w, label=np.arange(N))
    s = load(path)
    np.testing.assert_allclose(s.probabilities, w / w.sum())
    assert list(s.metadata.columns) == ["label"]
    assert isinstance(s.metadata, pd.DataFrame)


def test_weighted_report_of_weights_near_the_float64_maximum(x):
    """Weights only count relative to each other: scaled by 1e307 (their sum overflows) they give the
    weighted moments of the unscaled ones, where the raw sums made the eigensolver fail."""
    from embgeo.analysis import isotropy_report

    w = np.random.default_rng(1).uniform(1, 2, N)
    plain = isotropy_report(EmbeddingSet(x, weights=w), weighted=True)
    huge = isotropy_report(EmbeddingSet(x, weights=w * 1e307), weighted=True)
    np.testing.assert_allclose(huge.eigenvalues, plain.eigenvalues, rtol=1e-9)
    assert huge.isoscore == pytest.approx(plain.isoscore)
