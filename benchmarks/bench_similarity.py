"""Representation similarity at scale: the streamed linear statistics of two memory-mapped files.

    python benchmarks/bench_similarity.py [--n 1000000] [--pairs 384x768] [--block-rows 8192]
                                          [--data-dir DIR] [--out DIR]

For each n and pair of dimensions (default 1,000,000 rows, 384 against 768), two float32 ``.npy`` files
of the same items are written once (then reused) to ``--data-dir`` (default ``benchmarks/.data``,
git-ignored), block by block so no n x d float64 array is ever held: A has a power-law spectrum and an
offset (embedding-like), B = tanh(A W) + noise for a fixed random W (d_A x d_B), so the two are related
but not linearly. Each case runs in a child process of its own, which times

* ``validate``: ``EmbeddingSet`` of both memory maps (the NaN/inf and magnitude scan, one pass each);
* ``cross_moments``: :func:`scan_cross_moments`, the one streamed pass (float64 X^T X, Y^T Y, X^T Y and the
  row-norm sums, from float32 blocks);
* ``statistics``: :func:`linear_statistics` from those moments (linear and debiased CKA, SVCCA, PWCCA,
  Procrustes and angular shape distances: eigen- and singular-value decompositions of d x d matrices).

Memory: the child's peak resident memory (``ru_maxrss``; the mapped files' pages count while they are
resident, so the input size is printed beside it) and its peak anonymous memory (``RssAnon``, sampled:
its own arrays, not the page cache), which is what the streaming bounds (about ``block_rows (d_A + d_B)
16`` bytes of blocks plus ``8 (d_A + d_B)^2`` of moments). Results go to
``benchmarks/results/similarity_n{n}.{json,md}`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench_scale import AnonymousPeak
from machine import machine_info

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WRITE_ROWS = 100_000


def write_pair(dir_: Path, n: int, da: int, db: int, seed: int = 0) -> tuple[Path, Path]:
    """The two files of one case (written once; block b's rows from the seed (seed, b))."""
    pa, pb = dir_ / f"sim_a_n{n}_d{da}.npy", dir_ / f"sim_b_n{n}_d{da}x{db}.npy"
    if pa.exists() and pb.exists():
        return pa, pb
    dir_.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale, offset = np.geomspace(3.0, 0.05, da), rng.normal(size=da)
    w = rng.normal(size=(da, db)) / np.sqrt(da)
    tmp_a, tmp_b = pa.with_suffix(".tmp"), pb.with_suffix(".tmp")
    a = np.lib.format.open_memmap(tmp_a, mode="w+", dtype=np.float32, shape=(n, da))
    b = np.lib.format.open_memmap(tmp_b, mode="w+", dtype=np.float32, shape=(n, db))
    for block, start in enumerate(range(0, n, WRITE_ROWS)):
        r = np.random.default_rng([seed, block])
        rows = min(WRITE_ROWS, n - start)
        x = r.standard_normal((rows, da)) * scale + offset
        a[start:start + rows] = x
        b[start:start + rows] = np.tanh(x @ w) + 0.1 * r.standard_normal((rows, db))
    a.flush(), b.flush()
    del a, b
    tmp_a.rename(pa)
    tmp_b.rename(pb)
    return pa, pb


def child(path_a: str, path_b: str, block_rows: int) -> dict:
    from embgeo.analysis import EmbeddingSet, scan_cross_moments
    from embgeo.analysis.comparison import linear_statistics

    warm = np.random.default_rng(1).normal(size=(500, 8))
    linear_statistics(scan_cross_moments(warm, warm[:, :5]))  # imports and BLAS threads warmed
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    anon = AnonymousPeak()
    t0 = time.perf_counter()
    a = EmbeddingSet(np.load(path_a, mmap_mode="r"), name="A")
    b = EmbeddingSet(np.load(path_b, mmap_mode="r"), name="B")
    t1 = time.perf_counter()
    moments = scan_cross_moments(a.vectors, b.vectors, block_rows=block_rows, progress=False)
    t2 = time.perf_counter()
    stats = linear_statistics(moments)
    t3 = time.perf_counter()
    stats.pop("canonical_correlations")
    return {"n": a.n, "dim_a": a.dim, "dim_b": b.dim, "block_rows": block_rows,
            "memory_mapped": bool(a.storage_note and b.storage_note),
            "input_mib": (a.vectors.nbytes + b.vectors.nbytes) / 2**20,
            "validate_s": t1 - t0, "cross_moments_s": t2 - t1, "statistics_s": t3 - t2, "total_s": t3 - t0,
            "rows_per_s": a.n / (t2 - t1), "moments_mib": moments.nbytes / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**20,
            "rss_before_mib": rss_loaded / 2**20, "peak_anon_mib": anon.stop() / 2**20,
            "statistics": {k: (list(v) if isinstance(v, tuple) else v) for k, v in stats.items()}}


def run_case(pa: Path, pb: Path, block_rows: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(pa), str(pb), "--block-rows", str(block_rows)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        raise SystemExit(f"case {pa.name} / {pb.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(rows: list[dict], out: Path, n: int) -> None:
    result = {"machine": machine_info("numpy"), "results": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"similarity_n{n}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [f"# Streamed linear similarity statistics, {n:,} rows, memory-mapped", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}. "
             "One pass of float64 cross-moments over float32 blocks, then linear / debiased CKA, SVCCA, PWCCA and "
             "the Procrustes distances from them; each case in its own process. Peak RSS counts the mapped "
             "files' resident pages; peak anon is the process's own memory.", "",
             "| n | d_A x d_B | input MiB | validate s | cross-moments s | statistics s | rows/s | "
             "peak RSS MiB | peak anon MiB | linear CKA | debiased CKA |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["statistics"]
        lines.append(f"| {r['n']:,} | {r['dim_a']} x {r['dim_b']} | {r['input_mib']:.0f} | {r['validate_s']:.1f} | "
                     f"{r['cross_moments_s']:.1f} | {r['statistics_s']:.2f} | {r['rows_per_s']:,.0f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['peak_anon_mib']:.0f} | {s['linear_cka']:.4f} | "
                     f"{s['debiased_cka']:.4f} |")
    (out / f"similarity_n{n}.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--pairs", nargs="+", default=["384x768"], help="d_A x d_B of each case, e.g. 384x768")
    p.add_argument("--block-rows", type=int, default=8_192)
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.block_rows)))
        return 0
    rows = []
    for pair in args.pairs:
        da, db = (int(v) for v in pair.lower().split("x"))
        pa, pb = write_pair(args.data_dir, args.n, da, db)
        rows.append(run_case(pa, pb, args.block_rows))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    write_results(rows, args.out, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
