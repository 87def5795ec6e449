"""The catalogue of bad input, run through every entry point (issue 15).

Each case is data: how to build the input, and the words its error must contain. Every array case goes
through ``load``, ``EmbeddingSet``, each report and each transform; every file case through ``load`` and
each CLI command. Every entry must raise :class:`EmbeddingInputError` (the CLI: exit 2 with one line on
stderr and no traceback) whose message holds the case's words, and must leave the input as it was: the
array's values, shape and ``flags.writeable``; the file's bytes.

A case is added here when a new kind of bad input is found, so that it stays refused, by name.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Callable

import h5py
import numpy as np
import pytest

from embgeo import cli
from embgeo.analysis import (
    TRANSFORMS,
    EmbeddingInputError,
    EmbeddingSet,
    concentration_report,
    geometry_report,
    hubness_report,
    intrinsic_dimension,
    isotropy_report,
    load,
    sampled_report,
    shift_report,
    similarity_distribution,
)

N, D = 60, 8


def _gauss(n=N, d=D, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


# ----------------------------------------------------------------------------------- array cases


@dataclass(frozen=True)
class ArrayCase:
    id: str
    build: Callable[[], object]
    words: tuple[str, ...]
    #: keyword arguments of EmbeddingSet / load (weights, metric of the reports)
    kwargs: dict | None = None
    #: entry points left out, with the reason in the case's comment
    skip: tuple[str, ...] = ()


def _with_row(value, row=7, dtype=np.float64):
    x = _gauss().astype(dtype)
    x[row, 2] = value
    return x


def _twins():
    x = _gauss(2, D)
    return np.repeat(x, 30, axis=0)  # 60 rows, 2 distinct points


ARRAY_CASES = [
    ArrayCase("1-D", lambda: _gauss()[0], ("2-d", "single vector")),
    ArrayCase("3-D", lambda: _gauss().reshape(6, 10, D), ("2-d", "flatten")),
    ArrayCase("no rows", lambda: np.zeros((0, D)), ("empty",)),
    ArrayCase("no columns", lambda: np.zeros((N, 0)), ("empty",)),
    ArrayCase("ragged", lambda: [[1.0, 2.0], [3.0]] * 30, ("different lengths",)),
    ArrayCase("strings", lambda: np.array([["a", "b"]] * N, dtype=object), ("not numeric",)),
    ArrayCase("complex", lambda: _gauss().astype(np.complex128), ("complex",)),
    ArrayCase("bool", lambda: _gauss() > 0, ("bool",)),
    ArrayCase("scalar", lambda: np.float64(3.0), ("2-d",)),
    ArrayCase("NaN", lambda: _with_row(np.nan), ("nan or inf", "[7]")),
    ArrayCase("inf", lambda: _with_row(np.inf, row=11), ("nan or inf", "[11]")),
    ArrayCase("beyond float32", lambda: _with_row(1e300, row=5), ("beyond float32's range", "[5]")),
    ArrayCase("float64 underflow", lambda: _gauss() * 1e-46, ("below float32's smallest number",)),
    ArrayCase("float32 at 1e19", lambda: (_gauss() * 1e19).astype(np.float32), ("overflow above", "rescale")),
    ArrayCase("float32 at 1e-25", lambda: (_gauss() * 1e-25).astype(np.float32),
              ("below float32's precision", "rescale")),
    ArrayCase("weights too short", _gauss, ("weights", "59", "60"), kwargs={"weights": np.ones(N - 1)}),
    ArrayCase("weights NaN", _gauss, ("weights", "nan"), kwargs={"weights": np.r_[np.ones(N - 1), np.nan]}),
    ArrayCase("weights negative", _gauss, ("non-negative",), kwargs={"weights": np.r_[np.ones(N - 1), -1.0]}),
    ArrayCase("weights 2-D", _gauss, ("weights", "shape"), kwargs={"weights": np.ones((N // 2, 2))}),
    ArrayCase("weights zero", _gauss, ("sum to zero",), kwargs={"weights": np.zeros(N)}),
]

#: Every report, as ``entry(data, **kw)`` on an EmbeddingSet or an array; small settings keep it fast.
REPORTS = {
    "geometry_report": lambda x: geometry_report(x, k=5, sample=30),
    "sampled_report": lambda x: sampled_report(x, k=5, sample=30, subsample=40),
    "isotropy_report": isotropy_report,
    "intrinsic_dimension": lambda x: intrinsic_dimension(x, k=5),
    "hubness_report": lambda x: hubness_report(x, k=5),
    "concentration_report": lambda x: concentration_report(x, k=5, sample=30),
    "similarity_distribution": lambda x: similarity_distribution(x, k=5),
    "shift_report (corpus)": lambda x: shift_report(x, _gauss(seed=3), k=5, sample_size=30, n_permutations=0,
                                                    transforms=False),
    "shift_report (queries)": lambda x: shift_report(_gauss(seed=3), x, k=5, sample_size=30, n_permutations=0,
                                                     transforms=False),
}


def _snapshot(obj):
    if isinstance(obj, np.ndarray):
        return obj.copy(), obj.shape, obj.flags.writeable
    return None


def _assert_unchanged(obj, snap):
    if snap is None:
        return
    values, shape, writeable = snap
    assert obj.shape == shape and obj.flags.writeable == writeable
    np.testing.assert_array_equal(obj, values)


def _entries(case: ArrayCase):
    kw = case.kwargs or {}
    weighted = "weights" in kw
    yield "load", lambda x: load(x, **kw)
    yield "EmbeddingSet", lambda x: EmbeddingSet(x, **kw)
    if weighted:  # the weights are refused where the set is built, whatever runs on it next
        return
    for name, report in REPORTS.items():
        yield name, report
    for name, make in TRANSFORMS.items():
        yield f"transform {name}", lambda x, make=make: make().fit_transform(x)


def _array_params():
    for case in ARRAY_CASES:
        for entry, run in _entries(case):
            if entry not in case.skip:
                yield pytest.param(case, run, id=f"{case.id} / {entry}")


@pytest.mark.parametrize("case, run", list(_array_params()))
def test_array_case(case, run):
    x = case.build()
    snap = _snapshot(x)
    with pytest.raises(EmbeddingInputError) as err:
        run(x)
    message = str(err.value).lower()
    assert "\n" not in message and len(message) < 600, message
    for word in case.words:
        assert word.lower() in message, f"{word!r} not in {message!r}"
    _assert_unchanged(x, snap)


@pytest.mark.parametrize("entry", ["geometry_report", "intrinsic_dimension"])
def test_every_report_counts_distinct_points_when_only_copies_are_left(entry):
    """Sixty rows that are thirty copies each of two points: the message counts the 2 distinct points."""
    with pytest.raises(EmbeddingInputError, match="2 distinct"):
        REPORTS[entry](_twins())


# ----------------------------------------------------------------------------------- file cases


@dataclass(frozen=True)
class FileCase:
    id: str
    #: writes the bad file under the folder given and returns its path
    build: Callable[[object], object]
    words: tuple[str, ...]


def _npy_with_extra_rows(tmp):
    path = tmp / "long.npy"
    np.save(path, _gauss().astype(np.float32))
    with open(path, "ab") as fh:
        fh.write(np.ones((3, D), dtype=np.float32).tobytes())
    return path


def _npy_truncated(tmp):
    path = tmp / "short.npy"
    np.save(path, _gauss().astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-4 * D * 2])
    return path


def _npz(tmp, name, **arrays):
    path = tmp / name
    np.savez(path, vectors=_gauss().astype(np.float32), **arrays)
    return path


def _hdf5(tmp, name, **datasets):
    path = tmp / name
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def _corrupt_npz(tmp):
    good = _npz(tmp, "whole.npz")
    path = tmp / "corrupt.npz"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def _symlink_loop(tmp):
    a, b = tmp / "loop.npy", tmp / "loop2.npy"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def _fifo(tmp):
    path = tmp / "pipe.npy"
    os.mkfifo(path)
    return path


def _text_file(name, text):
    def build(tmp):
        path = tmp / name
        path.write_text(text)
        return path
    return build


_TRAIN = _gauss().astype(np.float32)
_TEST = _gauss(4, D, seed=1).astype(np.float32)

FILE_CASES = [
    FileCase("missing", lambda tmp: tmp / "missing.npy", ("missing.npy",)),
    FileCase("not an array", _text_file("junk.npy", "this is not an array"), ("junk.npy",)),
    FileCase("empty file", _text_file("empty.npy", ""), ("empty.npy",)),
    FileCase("unknown extension", _text_file("vectors.xyz", "1,2,3"), ("vectors.xyz",)),
    FileCase("npy longer than its header", _npy_with_extra_rows, ("longer",)),
    FileCase("npy truncated", _npy_truncated, ("truncated",)),
    FileCase("npz weights as text", lambda tmp: _npz(tmp, "w.npz", weights=np.array(["a"] * N)),
             ("'weights'", "not numbers")),
    FileCase("npz weights too short", lambda tmp: _npz(tmp, "s.npz", weights=np.ones(N - 3)),
             ("'weights'", f"{N - 3} entries")),
    FileCase("npz weights (n/2, 2)", lambda tmp: _npz(tmp, "h.npz", weights=np.ones((N // 2, 2))),
             ("'weights'", f"shape ({N // 2}, 2)")),
    FileCase("npz corrupt", _corrupt_npz, ("truncated or corrupt",)),
    FileCase("csv row too short", _text_file("short.csv", "a,b,c\n1,2,3\n4,5\n7,8,9\n"), ("fields",)),
    FileCase("symlink loop", _symlink_loop, ("symbolic link loop",)),
    FileCase("fifo", _fifo, ("FIFO",)),
    FileCase("hdf5 1-D neighbors", lambda tmp: _hdf5(tmp, "n.hdf5", train=_TRAIN, test=_TEST,
                                                     neighbors=np.arange(4, dtype=np.int32)),
             ("'neighbors'", "shape (4,)")),
    FileCase("hdf5 ids out of range", lambda tmp: _hdf5(tmp, "r.hdf5", train=_TRAIN, test=_TEST,
                                                        neighbors=np.full((4, 3), N, dtype=np.int32)),
             ("'neighbors'", f"{N} rows")),
    FileCase("hdf5 negative ids", lambda tmp: _hdf5(tmp, "g.hdf5", train=_TRAIN, test=_TEST,
                                                    neighbors=np.full((4, 3), -1, dtype=np.int64)),
             ("'neighbors'", "negative")),
    FileCase("hdf5 float ids", lambda tmp: _hdf5(tmp, "f.hdf5", train=_TRAIN, test=_TEST,
                                                 neighbors=np.zeros((4, 3))),
             ("'neighbors'", "integers")),
    FileCase("hdf5 only test", lambda tmp: _hdf5(tmp, "q.hdf5", test=_TEST,
                                                 neighbors=np.zeros((4, 3), dtype=np.int32)),
             ("no 'train' dataset",)),
    FileCase("float64 beyond float32", lambda tmp: (np.save(tmp / "big.npy", _with_row(1e300, row=5)),
                                                    tmp / "big.npy")[1], ("beyond float32's range", "[5]")),
    FileCase("NaN row", lambda tmp: (np.save(tmp / "nan.npy", _with_row(np.nan, row=9)), tmp / "nan.npy")[1],
             ("nan or inf", "[9]")),
]
if os.path.exists("/dev/zero"):
    FILE_CASES.append(FileCase("character device", lambda tmp: (
        (tmp / "zero.npy").symlink_to("/dev/zero"), tmp / "zero.npy")[1], ("character device",)))

#: Every CLI command that reads a file, with the bad file in each place it can stand.
COMMANDS = {
    "load": None,
    "report": lambda p, good, out: ["report", p, "--k", "3", "--sample", "20"],
    "report --sampled": lambda p, good, out: ["report", p, "--sampled", "--k", "3", "--sample", "20"],
    "transform": lambda p, good, out: ["transform", p, str(out / "o.npy"), "--method", "center"],
    "compare (A)": lambda p, good, out: ["compare", p, good, "--k", "3"],
    "compare (B)": lambda p, good, out: ["compare", good, p, "--k", "3"],
    "index-stats": lambda p, good, out: ["index-stats", p, "--k", "3"],
    "index-stats --queries": lambda p, good, out: ["index-stats", good, "--queries", p, "--k", "3"],
    "shift (corpus)": lambda p, good, out: ["shift", p, good, "--k", "3", "--json", str(out / "s.json")],
    "shift (queries)": lambda p, good, out: ["shift", good, p, "--k", "3", "--json", str(out / "s.json")],
}


def _file_bytes(path):
    try:
        return path.read_bytes() if stat.S_ISREG(os.lstat(path).st_mode) else None
    except OSError:
        return None


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_file_case(case, command, tmp_path, capsys):
    bad = case.build(tmp_path)
    good = tmp_path / "good.npy"
    np.save(good, _gauss(seed=3).astype(np.float32))
    out = tmp_path / "out"
    out.mkdir()
    before = _file_bytes(bad)
    if command == "load":
        with pytest.raises((EmbeddingInputError, OSError)) as err:
            load(bad)
        message = str(err.value).lower()
        assert "\n" not in message
    else:
        capsys.readouterr()
        status = cli.main(COMMANDS[command](str(bad), str(good), out))
        err = capsys.readouterr().err
        assert status == cli.EXIT_BAD_INPUT, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("embgeo: error:") and "RuntimeWarning" not in err, err
        message = err.lower()
        assert not list(out.iterdir()), "nothing is written for bad input"
    for word in case.words:
        assert word.lower() in message, f"{word!r} not in {message!r}"
    assert _file_bytes(bad) == before
