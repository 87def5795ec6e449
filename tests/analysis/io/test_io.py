"""embgeo.analysis.io.load: every format round-trips, and every bad input fails with a clear message.

Each file is written here with the format's own library (numpy, pyarrow, pandas, h5py, safetensors),
then read back through ``load``; the tests also check that loading leaves the file untouched.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet
from embgeo.analysis.io import FORMATS, load

N, D = 12, 5


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)


@pytest.fixture
def texts():
    return [f"item{i}" for i in range(N)]


def _fingerprint(path):
    st = os.stat(path)
    return path.read_bytes(), st.st_mtime_ns


def _load_untouched(path, **kw):
    """load(path) and assert the file's bytes and mtime did not change."""
    before = _fingerprint(path)
    s = load(path, **kw)
    assert _fingerprint(path) == before
    return s


# --------------------------------------------------------------------------------------------- writers


def _write_texmex(path, rows: np.ndarray, dtype: str):
    d = rows.shape[1]
    rec = np.empty(len(rows), dtype=[("dim", "<i4"), ("vec", dtype, (d,))])
    rec["dim"] = d
    rec["vec"] = rows
    rec.tofile(path)


def _write_parquet(path, x, texts, fixed=False, extra=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(x.ravel())
    vec = pa.FixedSizeListArray.from_arrays(flat, x.shape[1]) if fixed else pa.array(list(map(list, x)),
                                                                                       pa.list_(pa.float32()))
    cols = {"embedding": vec, "text": pa.array(texts)}
    cols.update(extra or {})
    pq.write_table(pa.table(cols), path)


def _write_hdf5(path, train, test, distance="angular", neighbors=None, **dataset_kw):
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=train, **dataset_kw)
        f.create_dataset("test", data=test)
        if neighbors is not None:
            f.create_dataset("neighbors", data=neighbors)
            f.create_dataset("distances", data=np.ones(neighbors.shape, dtype=np.float32))
        f.attrs["distance"] = distance


# --------------------------------------------------------------------------------------------- round trips


def test_npy_float32_is_memory_mapped_read_only(tmp_path, x):
    path = tmp_path / "vecs.npy"
    np.save(path, x)
    s = _load_untouched(path)
    assert isinstance(s.vectors, np.memmap) or isinstance(s.vectors.base, np.memmap)
    assert not s.vectors.flags.writeable
    np.testing.assert_array_equal(s.vectors, x)
    assert s.name == "vecs" and s.source == str(path)
    assert "memory-mapped" in repr(s)
    with pytest.raises(ValueError):
        s.vectors[0, 0] = 1.0


def test_npy_other_dtypes_are_converted_and_mmap_can_be_off(tmp_path, x):
    path = tmp_path / "vecs.npy"
    np.save(path, x.astype(np.float64))
    s = _load_untouched(path)
    assert s.vectors.dtype == np.float32 and not isinstance(s.vectors.base, np.memmap)
    np.testing.assert_allclose(s.vectors, x)
    np.save(path, x)
    s = load(path, mmap=False)
    assert not isinstance(s.vectors, np.memmap) and not isinstance(s.vectors.base, np.memmap)
    np.testing.assert_array_equal(s.vectors, x)


def test_npz_picks_vectors_weights_and_metadata(tmp_path, x, texts):
    path = tmp_path / "words.npz"
    freq = np.arange(1, N + 1, dtype=np.float64)
    np.savez(path, embeddings=x, frequencies=freq, text=np.array(texts), other=np.zeros((3, 3)))
    s = _load_untouched(path)
    np.testing.assert_array_equal(s.vectors, x)
    np.testing.assert_array_equal(s.weights, freq)
    assert s.metadata.columns.tolist() == ["text"] and s.label(3) == "item3"


def test_npz_single_float_matrix_and_named_key(tmp_path, x):
    path = tmp_path / "a.npz"
    np.savez_compressed(path, emb_a=x, ids=np.arange(N * 2).reshape(N, 2))  # ints: not vectors
    np.testing.assert_array_equal(load(path).vectors, x)
    np.testing.assert_array_equal(load(path, vectors="ids").vectors, np.arange(N * 2).reshape(N, 2))


@pytest.mark.parametrize("fixed", [False, True])
def test_parquet_list_column(tmp_path, x, texts, fixed):
    import pyarrow as pa

    path = tmp_path / "t.parquet"
    _write_parquet(path, x, texts, fixed=fixed, extra={"count": pa.array(np.arange(1, N + 1))})
    s = _load_untouched(path)
    np.testing.assert_array_equal(s.vectors, x)
    assert s.weights is None  # a "count" column becomes weights only when asked
    assert s.metadata.columns.tolist() == ["text", "count"]
    s = load(path, weights="count")
    np.testing.assert_array_equal(s.weights, np.arange(1, N + 1))
    assert s.metadata.columns.tolist() == ["text"]
    assert s.texts == texts


def test_parquet_numeric_columns(tmp_path, x, texts):
    path = tmp_path / "wide.parquet"
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(D)]).assign(text=texts)
    df.to_parquet(path)
    s = _load_untouched(path)
    np.testing.assert_array_equal(s.vectors, x)
    assert s.texts == texts


def test_csv_numeric_columns_with_text(tmp_path, x, texts):
    path = tmp_path / "t.csv"
    df = pd.DataFrame(x, columns=[f"d{j}" for j in range(D)])
    df.insert(0, "text", texts)
    df["label"] = ["a", "b"] * (N // 2)
    df.to_csv(path, index=False)
    s = _load_untouched(path)
    np.testing.assert_allclose(s.vectors, x, rtol=1e-6)
    assert s.metadata.columns.tolist() == ["text", "label"]


def test_csv_written_with_its_index_keeps_ids_out_of_the_vectors(tmp_path, x):
    path = tmp_path / "indexed.csv"
    pd.DataFrame(x, columns=list("abcde")).to_csv(path)  # pandas writes the index as "Unnamed: 0"
    s = load(path)
    assert s.dim == D and s.metadata.columns.tolist() == ["Unnamed: 0"]
    np.testing.assert_allclose(s.vectors, x, rtol=1e-6)


def test_tsv_without_header(tmp_path, x):
    path = tmp_path / "t.tsv"
    np.savetxt(path, x, delimiter="\t", fmt="%.9g")
    s = _load_untouched(path)
    assert s.n == N  # the first row is data, not a header
    np.testing.assert_allclose(s.vectors, x, rtol=1e-6)


def test_csv_json_list_column(tmp_path, x, texts):
    path = tmp_path / "j.csv"
    pd.DataFrame({"text": texts, "vector": [str([float(v) for v in r]) for r in x]}).to_csv(path, index=False)
    s = _load_untouched(path)
    np.testing.assert_allclose(s.vectors, x, rtol=1e-6)
    assert s.texts == texts


def test_safetensors_single_and_named(tmp_path, x):
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"emb": x, "bias": np.zeros(D, dtype=np.float32)}, str(path))
    np.testing.assert_array_equal(_load_untouched(path).vectors, x)
    save_file({"a": x, "b": 2 * x}, str(path))
    np.testing.assert_array_equal(load(path, vectors="b").vectors, 2 * x)


@pytest.mark.parametrize("ext,dtype", [(".fvecs", "<f4"), (".bvecs", "u1"), (".ivecs", "<i4")])
def test_texmex(tmp_path, ext, dtype):
    rows = np.random.default_rng(1).integers(0, 200, size=(N, D)).astype(dtype)
    path = tmp_path / f"base{ext}"
    _write_texmex(path, rows, dtype)
    s = _load_untouched(path)
    np.testing.assert_array_equal(s.vectors, rows.astype(np.float32))
    if ext == ".fvecs":  # float rows stay a strided view of the memory-mapped file
        assert isinstance(s.vectors.base, np.memmap) or isinstance(s.vectors, np.memmap)
    np.testing.assert_array_equal(load(path, mmap=False).vectors, rows.astype(np.float32))


@pytest.mark.parametrize("distance,metric", [("angular", "cosine"), ("euclidean", "euclidean"), ("ip", "dot")])
def test_ann_benchmarks_hdf5(tmp_path, x, distance, metric):
    path = tmp_path / "glove-5-angular.hdf5"
    q = x[:3] + 0.5
    truth = np.arange(9, dtype=np.int32).reshape(3, 3)
    _write_hdf5(path, x, q, distance=distance, neighbors=truth)
    s = _load_untouched(path)
    np.testing.assert_array_equal(s.vectors, x)
    assert isinstance(s.vectors, np.memmap)  # contiguous float32 dataset: mapped, not read
    b = s.benchmark
    assert b.metric == metric
    np.testing.assert_array_equal(b.queries, q)
    np.testing.assert_array_equal(b.neighbors, truth)
    assert b.distances.shape == (3, 3)


def test_hdf5_compressed_is_read_and_unknown_distance_warns(tmp_path, x):
    path = tmp_path / "c.h5"
    _write_hdf5(path, x, x[:2], distance="hamming", compression="gzip", chunks=(4, D))
    with pytest.warns(UserWarning, match="hamming"):
        s = load(path)
    np.testing.assert_array_equal(s.vectors, x)
    assert s.benchmark.metric is None


# --------------------------------------------------------------------------------------------- in memory


def test_numpy_input_untouched_and_still_writeable(x):
    before = x.copy()
    s = load(x, metadata={"text": [str(i) for i in range(N)]}, weights=np.ones(N), name="arr")
    assert np.shares_memory(s.vectors, x)  # float32 is wrapped, not copied
    assert x.flags.writeable and not s.vectors.flags.writeable
    np.testing.assert_array_equal(x, before)
    assert s.name == "arr" and s.label(2) == "2" and s.probabilities.sum() == pytest.approx(1)


def test_nested_lists(x):
    np.testing.assert_allclose(load(x.tolist()).vectors, x)


def test_torch_tensors_including_bfloat16(x):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x.copy()).to(torch.bfloat16)
    s = load(t)
    assert s.vectors.dtype == np.float32
    np.testing.assert_allclose(s.vectors, t.float().numpy())
    t32 = torch.from_numpy(x.copy()).requires_grad_(True)
    np.testing.assert_array_equal(load(t32).vectors, x)


def test_dataframe_vector_column_and_numeric_columns(x, texts):
    df = pd.DataFrame({"text": texts, "emb": list(x), "freq": np.arange(N) + 1.0})
    snapshot = df.copy(deep=True)
    s = load(df, weights="freq")
    np.testing.assert_array_equal(s.vectors, x)
    assert s.metadata.columns.tolist() == ["text"] and s.weights[0] == 1.0
    pd.testing.assert_frame_equal(df, snapshot)

    wide = pd.DataFrame(x).assign(text=texts, id=np.arange(N))
    s = load(wide, metadata=["text", "id"])  # named metadata columns are not vector components
    assert s.dim == D and s.metadata.columns.tolist() == ["text", "id"]
    s = load(wide, vectors=[str(j) for j in range(3)])
    np.testing.assert_array_equal(s.vectors, x[:, :3])


def test_series_of_vectors(x):
    np.testing.assert_array_equal(load(pd.Series(list(x))).vectors, x)


def test_embedding_set_returned_as_is(x):
    s = EmbeddingSet(x, name="orig")
    assert load(s) is s
    renamed = load(s, name="new", weights=np.ones(N))
    assert renamed.name == "new" and renamed.weights is not None and s.weights is None


def test_on_invalid_drop_through_load(tmp_path, x, texts):
    x = x.copy()
    x[[2, 7]] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, vectors=x, text=np.array(texts))
    with pytest.raises(EmbeddingInputError, match=r"bad\.npz: vectors: 2 of 12 rows contain NaN or inf .*\[2, 7\]"):
        load(path)
    s = load(path, on_invalid="drop")
    assert s.n == N - 2 and s.dropped_rows.tolist() == [2, 7]
    assert "item2" not in s.texts and s.texts[2] == "item3"


def test_formats_listed():
    assert {".npy", ".npz", ".parquet", ".csv", ".tsv", ".safetensors", ".fvecs", ".bvecs", ".ivecs",
            ".hdf5"} <= set(FORMATS)


# --------------------------------------------------------------------------------------------- errors


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="no such file: .*nope.npy"):
        load("/definitely/not/here/nope.npy")


def test_unknown_extension_lists_known(tmp_path):
    path = tmp_path / "v.xyz"
    path.write_text("1,2\n")
    with pytest.raises(EmbeddingInputError, match=r"unknown file type '\.xyz'.*\.npy, .*\.parquet.*\.fvecs"):
        load(path)


def test_directory_without_shards(tmp_path):
    (tmp_path / "notes.txt").write_text("not embeddings")
    with pytest.raises(EmbeddingInputError, match=r"names no \.npy/\.parquet/\.pq files"):
        load(tmp_path)


@pytest.mark.parametrize("ext", [".npy", ".npz", ".parquet", ".csv", ".safetensors", ".fvecs", ".hdf5"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"e{ext}"
    path.touch()
    with pytest.raises(EmbeddingInputError, match=r"e\.\w+ is empty \(0 bytes\)"):
        load(path)


def test_truncated_npy(tmp_path, x):
    path = tmp_path / "t.npy"
    np.save(path, x)
    path.write_bytes(path.read_bytes()[:-17])
    for mmap in (True, False):
        with pytest.raises(EmbeddingInputError, match=r"t\.npy: could not read it as \.npy \(truncated or corrupt"):
            load(path, mmap=mmap)


def test_not_npy_bytes(tmp_path):
    path = tmp_path / "fake.npy"
    path.write_bytes(b"hello world, not numpy")
    with pytest.raises(EmbeddingInputError, match="not a .npy file"):
        load(path)


def test_object_npy(tmp_path):
    path = tmp_path / "o.npy"
    np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(EmbeddingInputError, match=r"o\.npy: holds Python objects"):
        load(path)


@pytest.mark.parametrize("ext,what", [(".npz", "npz"), (".parquet", "Parquet"), (".safetensors", "safetensors"),
                                      (".hdf5", "HDF5")])
def test_corrupt_files_wrap_library_error(tmp_path, ext, what):
    path = tmp_path / f"junk{ext}"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EmbeddingInputError, match=rf"junk\{ext}: could not read it as \.?{what} \(truncated or corrupt\?\): \w+"):
        load(path)


def test_truncated_fvecs(tmp_path, x):
    path = tmp_path / "t.fvecs"
    _write_texmex(path, x, "<f4")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(EmbeddingInputError, match=r"not a whole number of rows of 24 bytes \(dimension 5\): truncated"):
        load(path)


def test_fvecs_header_disagrees(tmp_path, x):
    path = tmp_path / "h.fvecs"
    _write_texmex(path, x, "<f4")
    raw = bytearray(path.read_bytes())
    raw[3 * 24:3 * 24 + 4] = np.int32(7).tobytes()  # row 3 claims dimension 7
    path.write_bytes(bytes(raw))
    with pytest.raises(EmbeddingInputError, match=r"rows \[3\] have dimension headers \[7\], but row 0 says 5"):
        load(path)
    path.write_bytes(np.int32(-4).tobytes() + b"\x00" * 16)
    with pytest.raises(EmbeddingInputError, match="header says dimension -4"):
        load(path)


def test_npz_missing_and_ambiguous_keys(tmp_path, x):
    path = tmp_path / "k.npz"
    np.savez(path, a=x, b=x)
    with pytest.raises(EmbeddingInputError, match=r"several 2-D arrays could be the vectors: \['a', 'b'\]"):
        load(path)
    with pytest.raises(EmbeddingInputError, match=r"no array 'c'; arrays are \['a', 'b'\]"):
        load(path, vectors="c")
    np.savez(path, a=np.arange(3))
    with pytest.raises(EmbeddingInputError, match=r"found no 2-D numeric array among \['a'\]"):
        load(path)


def test_parquet_missing_ragged_and_null(tmp_path, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"text": texts}), path)
    with pytest.raises(EmbeddingInputError, match=r"found no vector column .*columns are \['text'\]"):
        load(path)
    pq.write_table(pa.table({"v": [[1.0, 2.0], [1.0], [3.0, 4.0]]}), path)
    with pytest.raises(EmbeddingInputError, match=r"ragged\): row 0 has 2 values but rows \[1\] have \[1\]"):
        load(path)
    pq.write_table(pa.table({"v": [[1.0, 2.0], None, [3.0, 4.0]]}), path)
    with pytest.raises(EmbeddingInputError, match=r"column 'v' is null at rows \[1\]"):
        load(path)
    pq.write_table(pa.table({"v": [[1.0, 2.0]] * 3, "w": [[1.0]] * 3}), path)
    with pytest.raises(EmbeddingInputError, match=r"several columns hold lists \['v', 'w'\]"):
        load(path)
    with pytest.raises(EmbeddingInputError, match=r"no column 'zz' for vectors; columns are \['v', 'w'\]"):
        load(path, vectors="zz")


def test_csv_non_numeric_and_ragged_rows(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,oops\n5,6\n7,8\n")
    with pytest.raises(EmbeddingInputError, match=r"bad\.csv: table: column 'b' is numeric except .* rows \[1\] \(e\.g\. 'oops'\)"):
        load(path)
    path.write_text('text,vec\nx,"[1, 2]"\ny,"[1, 2, 3]"\n')
    with pytest.raises(EmbeddingInputError, match=r"column 'vec' has rows of different lengths \(ragged\)"):
        load(path)
    path.write_text('text,vec\nx,"[1, 2]"\ny,"[1, \'a\']"\n')
    with pytest.raises(EmbeddingInputError, match=r"column 'vec' row 1 is not a JSON list of numbers"):
        load(path)
    path.write_text('text,vec\nx,"[1, 2]"\ny,"[1, ""a""]"\n')  # CSV doubles quotes
    with pytest.raises(EmbeddingInputError, match=r"column 'vec' row 1 holds non-numeric values"):
        load(path)
    path.write_text("text,label\nx,y\n")
    with pytest.raises(EmbeddingInputError, match=r"found no vector column"):
        load(path)
    path.write_text("a,b\n")
    with pytest.raises(EmbeddingInputError, match="header but no data rows"):
        load(path)


def test_safetensors_ambiguous(tmp_path, x):
    from safetensors.numpy import save_file

    path = tmp_path / "two.safetensors"
    save_file({"a": x, "b": x}, str(path))
    with pytest.raises(EmbeddingInputError, match=r"several 2-D tensors could be the vectors: \['a', 'b'\]"):
        load(path)


def test_hdf5_query_dimension_mismatch(tmp_path, x):
    path = tmp_path / "m.hdf5"
    _write_hdf5(path, x, np.ones((2, D + 1), dtype=np.float32))
    with pytest.raises(EmbeddingInputError, match="queries have dimension 6 but the corpus has dimension 5"):
        load(path)


def test_in_memory_errors(tmp_path, x):
    with pytest.raises(EmbeddingInputError, match="ragged"):
        load([[1.0, 2.0], [3.0]])
    with pytest.raises(EmbeddingInputError, match="not numeric"):
        load(np.array([["a", "b"], ["c", "d"]], dtype=object))
    with pytest.raises(EmbeddingInputError, match="select columns or keys of a file or DataFrame"):
        load(x, vectors="emb")
    with pytest.raises(EmbeddingInputError, match=r"no column 'emb' for vectors; columns are \['0', '1'"):
        load(pd.DataFrame(x), vectors="emb")
    with pytest.raises(EmbeddingInputError, match="metadata has 3 rows but there are 12 vectors"):
        load(x, metadata=pd.DataFrame({"t": [1, 2, 3]}))
    path = tmp_path / "x.npy"
    np.save(path, x)
    with pytest.raises(EmbeddingInputError, match=r"\.npy files hold a single array"):
        load(path, vectors="emb")

