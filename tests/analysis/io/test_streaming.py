"""Loading without a full float32 copy in memory: per-block conversion, scratch maps, shards.

Every streamed load must give exactly the array the one-shot (``mmap=False``) load gives; the set's
repr must say where the vectors live; scratch files must never be left behind (not after success,
not after an error or an interrupt in the middle of a conversion); and memory must stay bounded by a
block, not by n.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import embgeo.analysis._core.scratch as scratch
from embgeo.analysis import EmbeddingInputError
from embgeo.analysis._core import float32_matrix_from_blocks, is_file_map, is_scratch_map, scratch_matrix
from embgeo.analysis.io import load

N, D = 700, 12


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((N, D))


@pytest.fixture
def scratch_dir(tmp_path, monkeypatch):
    """Every conversion goes to a scratch map (no in-memory shortcut), in a directory we can inspect."""
    where = tmp_path / "scratch"
    where.mkdir()
    monkeypatch.setenv("EMBGEO_SCRATCH", str(where))
    monkeypatch.setattr(scratch, "IN_MEMORY_BYTES", 0)
    return where


def _streamed_equals_one_shot(path, **kw):
    streamed = load(path, **kw)
    one_shot = load(path, mmap=False, **kw)
    np.testing.assert_array_equal(streamed.vectors, one_shot.vectors)
    assert not streamed.vectors.flags.writeable
    return streamed


@pytest.mark.parametrize("dtype", ["float16", "float64", "int16", "uint8"])
def test_npy_other_dtypes_go_to_a_scratch_map(tmp_path, scratch_dir, x, dtype):
    path = tmp_path / f"a_{dtype}.npy"
    np.save(path, (x * 20).astype(dtype))
    s = _streamed_equals_one_shot(path)
    assert is_scratch_map(s.vectors) and not is_file_map(s.vectors)
    assert "(scratch map on disk)" in repr(s) and "memory-mapped" not in repr(s)
    assert list(scratch_dir.iterdir()) == []  # the scratch file has no name, so nothing to clean up


def test_float32_npy_is_read_in_place_and_labelled(tmp_path, scratch_dir, x):
    path = tmp_path / "a.npy"
    np.save(path, x.astype(np.float32))
    s = load(path)
    assert is_file_map(s.vectors) and "(memory-mapped)" in repr(s)
    assert "memory-mapped" not in repr(load(path, mmap=False)) and "scratch" not in repr(load(path, mmap=False))


def test_small_conversions_stay_in_memory(tmp_path, x):
    path = tmp_path / "a.npy"
    np.save(path, x.astype(np.float16))
    s = load(path)
    assert not is_scratch_map(s.vectors) and not is_file_map(s.vectors)
    assert "memory-mapped" not in repr(s) and "scratch" not in repr(s)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "bfloat16"])
def test_safetensors(tmp_path, scratch_dir, x, dtype):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / f"m_{dtype}.safetensors"
    save_file({"bias": torch.zeros(D), "emb": torch.tensor(x).to(getattr(torch, dtype))}, str(path))
    s = _streamed_equals_one_shot(path, vectors="emb")
    np.testing.assert_array_equal(s.vectors, torch.tensor(x).to(getattr(torch, dtype)).float().numpy())
    assert is_file_map(s.vectors) if dtype == "float32" else is_scratch_map(s.vectors)


def test_bvecs_converted_fvecs_mapped(tmp_path, scratch_dir):
    rows = np.random.default_rng(1).integers(0, 255, size=(N, D))
    for ext, dtype in ((".bvecs", "u1"), (".fvecs", "<f4")):
        rec = np.empty(N, dtype=[("dim", "<i4"), ("vec", dtype, (D,))])
        rec["dim"], rec["vec"] = D, rows
        rec.tofile(tmp_path / f"base{ext}")
        s = _streamed_equals_one_shot(tmp_path / f"base{ext}")
        assert is_scratch_map(s.vectors) if ext == ".bvecs" else is_file_map(s.vectors)


def test_parquet_is_read_in_record_batches(tmp_path, scratch_dir, x):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vec = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), D)
    pq.write_table(pa.table({"id": np.arange(N), "embedding": vec}), tmp_path / "t.parquet", row_group_size=64)
    s = _streamed_equals_one_shot(tmp_path / "t.parquet")
    assert is_scratch_map(s.vectors) and s.metadata["id"].tolist() == list(range(N))


def test_parquet_null_and_ragged_rows_are_named_by_file_row(tmp_path, scratch_dir, x):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [list(r) for r in x.astype(np.float32)]
    rows[300] = None
    pq.write_table(pa.table({"embedding": pa.array(rows, pa.list_(pa.float32()))}), tmp_path / "n.parquet",
                   row_group_size=64)
    with pytest.raises(EmbeddingInputError, match=r"null at rows \[300\]"):
        load(tmp_path / "n.parquet")
    rows[300] = rows[300 - 1][:3]
    pq.write_table(pa.table({"embedding": pa.array(rows, pa.list_(pa.float32()))}), tmp_path / "r.parquet",
                   row_group_size=64)
    with pytest.raises(EmbeddingInputError, match="ragged"):
        load(tmp_path / "r.parquet")
    assert list(scratch_dir.iterdir()) == []


def test_chunked_hdf5_is_converted_per_chunk(tmp_path, scratch_dir, x):
    import h5py

    with h5py.File(tmp_path / "c.hdf5", "w") as f:
        f.create_dataset("train", data=x.astype(np.float16), chunks=(50, D), compression="gzip")
    s = _streamed_equals_one_shot(tmp_path / "c.hdf5")
    assert is_scratch_map(s.vectors)


def test_drop_invalid_rows_of_a_map_stays_on_disk(tmp_path, scratch_dir, x):
    x = x.astype(np.float32)
    x[[3, 500]] = np.nan
    np.save(tmp_path / "bad.npy", x)
    s = load(tmp_path / "bad.npy", on_invalid="drop")
    assert s.dropped_rows.tolist() == [3, 500] and is_scratch_map(s.vectors)
    np.testing.assert_array_equal(s.vectors, np.delete(x, [3, 500], axis=0))


# --------------------------------------------------------------------------------------------- shards


def test_npy_shards_as_one_set(tmp_path, scratch_dir, x):
    (tmp_path / "shards").mkdir()
    cuts = [0, 100, 350, N]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        np.save(tmp_path / "shards" / f"part-{i:03d}.npy", x[a:b].astype(np.float16 if i == 1 else np.float32))
    (tmp_path / "shards" / "README.txt").write_text("ignored: not a shard")
    s = load(tmp_path / "shards")
    expect = np.concatenate([x[:100].astype(np.float32), x[100:350].astype(np.float16).astype(np.float32),
                             x[350:].astype(np.float32)])
    np.testing.assert_array_equal(s.vectors, expect)
    assert s.metadata["shard"].value_counts().sort_index().tolist() == [100, 250, 350]
    assert s.metadata["shard"].iloc[0] == "part-000.npy" and s.name == "shards"
    np.testing.assert_array_equal(load(str(tmp_path / "shards" / "part-*.npy")).vectors, expect)
    assert list(scratch_dir.iterdir()) == []


def test_parquet_shards_keep_their_columns(tmp_path, scratch_dir, x):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for i, (a, b) in enumerate([(0, 300), (300, N)]):
        vec = pa.FixedSizeListArray.from_arrays(pa.array(x[a:b].astype(np.float32).ravel()), D)
        pq.write_table(pa.table({"text": [f"t{j}" for j in range(a, b)], "embedding": vec}),
                       tmp_path / f"s{i}.parquet", row_group_size=100)
    s = load(str(tmp_path / "s*.parquet"))
    np.testing.assert_array_equal(s.vectors, x.astype(np.float32))
    assert s.texts == [f"t{j}" for j in range(N)] and list(s.metadata.columns) == ["shard", "text"]


def test_shard_errors_name_the_shard(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((4, 3), np.float32))
    np.save(tmp_path / "b.npy", np.ones((4, 5), np.float32))
    with pytest.raises(EmbeddingInputError, match=r"b\.npy has dimension 5, but a\.npy has 3"):
        load(tmp_path)
    (tmp_path / "b.npy").unlink()
    import pandas as pd

    pd.DataFrame({"x": [1.0]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(EmbeddingInputError, match="mixes .npy and Parquet"):
        load(tmp_path)
    with pytest.raises(EmbeddingInputError, match=r"pattern .*nothing\*\.npy names no"):
        load(str(tmp_path / "nothing*.npy"))


# --------------------------------------------------------------------------------------------- scratch


def test_scratch_is_gone_after_an_error_or_interrupt_midway(scratch_dir):
    def blocks(stop):
        yield 0, np.ones((10, 4))
        raise stop

    for stop in (RuntimeError("disk on fire"), KeyboardInterrupt()):
        with pytest.raises(type(stop)):
            scratch_matrix(20, 4, blocks(stop))
        assert list(scratch_dir.iterdir()) == []
    with pytest.raises(EmbeddingInputError, match="expected 20 rows, the data held 10"):
        scratch_matrix(20, 4, iter([(0, np.ones((10, 4)))]))


def test_no_room_for_scratch_is_a_clear_error(scratch_dir, monkeypatch):
    monkeypatch.setattr(scratch, "DISK_MARGIN_BYTES", 10**18)
    with pytest.raises(EmbeddingInputError, match=r"1,000 x 8 as float32 needs .* of scratch disk in .*EMBGEO_SCRATCH"):
        scratch_matrix(1000, 8, iter(()))
    monkeypatch.setenv("EMBGEO_SCRATCH", str(scratch_dir / "missing"))
    with pytest.raises(EmbeddingInputError, match="not usable"):
        scratch_matrix(10, 8, iter(()))


def test_conversion_memory_is_bounded_by_a_block(tmp_path, scratch_dir):
    """A 400,000 x 64 float16 file (102 MB as float32) converts with a traced peak of a few blocks."""
    n, d = 400_000, 64
    src = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float16, shape=(n, d))
    for start in range(0, n, 100_000):
        src[start:start + 100_000] = np.random.default_rng(start).standard_normal((100_000, d))
    src.flush()
    del src
    tracemalloc.start()
    try:
        s = load(tmp_path / "big.npy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert is_scratch_map(s.vectors) and s.n == n
    assert peak < 0.4 * n * d * 4, f"traced peak {peak / 2**20:.0f} MiB for a {n * d * 4 / 2**20:.0f} MiB matrix"


def test_in_memory_below_the_threshold():
    out = float32_matrix_from_blocks(3, 2, iter([(0, np.ones((2, 2))), (2, np.zeros((1, 2)))]))
    assert out.dtype == np.float32 and not is_scratch_map(out) and out.sum() == 4


def test_a_dask_array_is_computed_a_row_chunk_at_a_time(scratch_dir, x):
    da = pytest.importorskip("dask.array", reason="the Dask engine is the optional extra embgeo[dask]")
    import dask
    from dask.callbacks import Callback

    lazy = da.from_array(x, chunks=(100, 5)) * 2.0  # float64, column chunks too: rows are put together
    largest = []

    class BiggestResult(Callback):  # the largest piece Dask hands back at once
        def _posttask(self, key, result, dsk, state, worker_id):
            largest.append(getattr(result, "nbytes", 0))

    with dask.config.set(scheduler="sync"), BiggestResult():
        s = load(lazy, name="lazy")
    np.testing.assert_array_equal(s.vectors, (x * 2.0).astype(np.float32))
    assert is_scratch_map(s.vectors) and "(scratch map on disk)" in repr(s)  # converted, never np.asarray'd
    assert max(largest) <= 100 * D * 8  # one row chunk (float64) at most, never the whole array
    from embgeo.analysis import EmbeddingSet

    np.testing.assert_array_equal(EmbeddingSet(lazy).vectors, s.vectors)  # the set takes one directly too
    with pytest.raises(EmbeddingInputError, match="2-D dask array"):
        load(da.zeros((4, 3, 2)))
    with pytest.raises(EmbeddingInputError, match="chunk sizes are unknown"):
        load(lazy[lazy[:, 0] > 0])
    with pytest.raises(EmbeddingInputError, match="real numeric dask array"):
        load(da.from_array(np.array([["a", "b"]])))
