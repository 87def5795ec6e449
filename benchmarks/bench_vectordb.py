"""Reading embeddings out of vector databases: rows per second and peak memory, and the live-index report.

For each database (LanceDB, Chroma; Qdrant local mode and Milvus Lite on request) an N x D collection of
unit-norm Gaussian float32 rows with string ids is written into a fresh folder with the database's own
client (build time reported, not the point). Then, each in a fresh Python process so that one's memory
does not hide another's:

* ``read``: ``embgeo.analysis.io.load(uri)`` -- wall time, rows/s, the process's peak resident memory
  (``ru_maxrss``, which sees the databases' Rust and Arrow buffers) and its resident memory after the
  imports, so the difference is the read's own; then, in another process and untimed, tracemalloc's peak
  of Python allocations (tracing slows a read that builds Python lists tenfold);
* ``live``: ``live_index_report(uri, n_queries=Q, k=10)`` -- recall@10 of the database's own search
  against exact search, latency p50/p95/p99 and QPS at the database's default settings.

Results go to benchmarks/results/vectordb_n{N}_d{D}.{json,md} with the machine and the date.

    python benchmarks/bench_vectordb.py                      # N = 1,000,000 x 384, LanceDB and Chroma
    python benchmarks/bench_vectordb.py --n 20000 --dbs lancedb chroma qdrant milvus --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUILD_ROWS = 50_000  # rows written per call while building
DISTRIBUTIONS = {"lancedb": "lancedb", "chroma": "chromadb", "qdrant": "qdrant-client", "milvus": "pymilvus"}


def _rows(n: int, d: int, start: int, stop: int) -> np.ndarray:
    x = np.random.default_rng(start).standard_normal((stop - start, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(db: str, root: Path, n: int, d: int) -> str:
    """Write the collection with the database's own client; returns its URI."""
    root.mkdir(parents=True, exist_ok=True)
    chunks = [(s, min(n, s + BUILD_ROWS)) for s in range(0, n, BUILD_ROWS)]
    if db == "lancedb":
        import lancedb
        import pyarrow as pa

        def batches():
            for s, e in chunks:
                x = _rows(n, d, s, e)
                yield pa.record_batch({"id": pa.array([f"r{i}" for i in range(s, e)]),
                                       "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d)})

        schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32(), d))])
        lancedb.connect(str(root)).create_table("docs", data=pa.RecordBatchReader.from_batches(schema, batches()))
        return f"lancedb://{root}/docs"
    if db == "chroma":
        import chromadb

        client = chromadb.PersistentClient(path=str(root))
        col = client.create_collection("docs", configuration={"hnsw": {"space": "cosine"}})
        step = client.get_max_batch_size()
        for s0, e0 in chunks:
            x = _rows(n, d, s0, e0)
            for s in range(0, len(x), step):
                col.add(ids=[f"r{i}" for i in range(s0 + s, s0 + min(len(x), s + step))], embeddings=x[s:s + step])
        return f"chroma://{root}/docs"
    if db == "qdrant":
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(root))
        client.create_collection("docs", vectors_config=models.VectorParams(size=d, distance=models.Distance.COSINE))
        for s, e in chunks:
            client.upload_collection("docs", vectors=_rows(n, d, s, e), ids=list(range(s, e)))
        client.close()
        return f"qdrant+local://{root}/docs"
    if db == "milvus":
        from pymilvus import MilvusClient

        client = MilvusClient(str(root / "m.db"))
        client.create_collection("docs", dimension=d, metric_type="COSINE")
        for s, e in chunks:
            client.insert("docs", [{"id": i, "vector": v.tolist()} for i, v in zip(range(s, e), _rows(n, d, s, e))])
        client.release_collection("docs")
        client.close()
        return f"milvus://{root / 'm.db'}/docs"
    raise ValueError(f"unknown database {db!r}")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(task: str, uri: str, queries: int) -> dict:
    """One measurement in this (fresh) process; printed as JSON on stdout."""
    from embgeo.analysis import live_index_report
    from embgeo.analysis.io import load

    import_rss = _rss_mib()
    if task == "read":
        t = time.perf_counter()
        s = load(uri)
        seconds = time.perf_counter() - t
        return {"rows": s.n, "dim": s.dim, "seconds": seconds, "rows_per_s": s.n / seconds,
                "peak_rss_mib": _rss_mib(), "rss_after_imports_mib": import_rss,
                "vectors_mib": s.n * s.dim * 4 / 2**20, "repr": repr(s).splitlines()[1].strip()}
    if task == "python_peak":
        # apart from the timed read: tracing every allocation made Chroma's read (Python lists per page)
        # ten times slower (300,000 x 384: 2,205 rows/s traced against 17,562 untraced, results/vectordb_n300000_d384)
        tracemalloc.start()
        load(uri)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return {"python_peak_mib": peak}
    t = time.perf_counter()
    r = live_index_report(uri, n_queries=queries, k=10)
    return {"seconds": time.perf_counter() - t, "recall_at_10": r.recall_at_k, "recall_min": r.recall_min,
            "latency_ms_p50": r.latency_ms_p50, "latency_ms_p95": r.latency_ms_p95,
            "latency_ms_p99": r.latency_ms_p99, "qps": r.qps, "metric": r.metric, "settings": r.settings,
            "peak_rss_mib": _rss_mib()}


def _run_child(task: str, uri: str, queries: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", task, uri, "--queries", str(queries)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{task} {uri} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--dbs", nargs="+", default=["lancedb", "chroma"], choices=["lancedb", "chroma", "qdrant", "milvus"])
    p.add_argument("--queries", type=int, default=200, help="queries of the live-index report (default 200)")
    p.add_argument("--workdir", type=Path, default=None, help="where the databases are written (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-python-peak", dest="python_peak", action="store_false",
                   help="skip the traced read that measures Python's own peak (minutes for Chroma at 1M)")
    p.add_argument("--child", nargs=2, metavar=("TASK", "URI"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.queries)))
        return 0
    rows = []
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        for db in args.dbs:
            t = time.perf_counter()
            uri = build(db, Path(work) / db, args.n, args.dim)
            row = {"database": db, "n": args.n, "dim": args.dim, "build_s": time.perf_counter() - t,
                   "read": _run_child("read", uri, args.queries), "live": _run_child("live", uri, args.queries)}
            if args.python_peak:
                row["read"].update(_run_child("python_peak", uri, args.queries))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    from importlib.metadata import version

    versions = {DISTRIBUTIONS[db]: version(DISTRIBUTIONS[db]) for db in args.dbs}
    out = {"machine": {**machine_info("numpy", "pyarrow"), **versions}, "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"vectordb_n{args.n}_d{args.dim}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    m = out["machine"]
    lines = [f"# Reading {args.n:,} x {args.dim} from vector databases, and their live-index report", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; "
             + ", ".join(f"{k} {v}" for k, v in versions.items())
             + ". Read = `load(uri)` in a fresh process; peak RSS is the process's ru_maxrss (imports included; "
             "'after imports' is the baseline). Live = `live_index_report(uri, n_queries=Q, k=10)` at the "
             "database's defaults, one query per call.", "",
             "| database | build s | read s | rows/s | peak RSS MiB | after imports MiB | vectors MiB | "
             "recall@10 | p50 ms | p95 ms | p99 ms | QPS |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rd, lv = r["read"], r["live"]
        lines.append(f"| {r['database']} | {r['build_s']:.1f} | {rd['seconds']:.2f} | {rd['rows_per_s']:,.0f} | "
                     f"{rd['peak_rss_mib']:.0f} | {rd['rss_after_imports_mib']:.0f} | {rd['vectors_mib']:.0f} | "
                     f"{lv['recall_at_10']:.3f} | {lv['latency_ms_p50']:.2f} | {lv['latency_ms_p95']:.2f} | "
                     f"{lv['latency_ms_p99']:.2f} | {lv['qps']:.0f} |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
