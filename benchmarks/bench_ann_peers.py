"""The all-points k-NN graph by embgeo's approximate join and by the libraries users would pick instead.

    python benchmarks/bench_ann_peers.py [--n 100000] [--dim 384] [--k 10 32] [--out DIR]

The report needs the k nearest neighbours of *every* point (a self-join). This puts embgeo's
``approximate_knn`` (an IVF join in a PCA subspace, re-ranked exactly; two recall targets) next to
pynndescent (NN-descent, the engine umap-learn ships with; ``NNDescent`` at two ``n_neighbors``, its
graph cut to k) and faiss HNSW (M = 32, built on the corpus, every point searched with k + 1,
itself dropped; three ``efSearch``), on ``datasets.make_anisotropic(n, dim)`` under cosine (unit
vectors; pynndescent and HNSW search them by euclidean / inner product, which ranks alike). Every
engine is scored by the same measure: recall@k against exact search on one fixed sample of 2,000
rows. Each engine first runs on a 5,000-row slice (numba compilation, thread pools), untimed.
Writes ``benchmarks/results/ann_peers_n{n}_d{dim}.{json,md}`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE = 2000
WARMUP_ROWS = 5000


def embgeo_join(x, k, target):
    from embgeo.analysis import approximate_knn

    table = approximate_knn(x, k=k, metric="cosine", target_recall=target, progress=False)
    return table.indices, f"target_recall={target}; {table.backend}"


def pynndescent_graph(x, k, n_neighbors):
    from pynndescent import NNDescent

    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    n_neighbors = max(n_neighbors, k + 1)  # the graph counts each point as its own first neighbour
    index = NNDescent(unit, n_neighbors=n_neighbors, metric="euclidean", random_state=0, low_memory=True,
                      compressed=True)
    ids = index.neighbor_graph[0]
    return _drop_self(ids, k), f"n_neighbors={n_neighbors}"


def hnsw_graph(x, k, ef_search, m=32, ef_construction=40):
    import faiss

    unit = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)
    index = faiss.IndexHNSWFlat(unit.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(unit)
    index.hnsw.efSearch = max(ef_search, k + 1)
    _, ids = index.search(unit, k + 1)
    return _drop_self(ids, k), f"M={m}, efConstruction={ef_construction}, efSearch={ef_search}"


def _drop_self(ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k ids other than the row itself (-1 where fewer came back)."""
    rows = np.arange(len(ids))[:, None]
    keep = ids != rows
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for i in range(len(ids)):
        found = ids[i][keep[i]][:k]
        out[i, :len(found)] = found
    return out


ENGINES = [
    ("embgeo IVF join", embgeo_join, {"target": 0.95}),
    ("embgeo IVF join", embgeo_join, {"target": 0.97}),
    ("pynndescent", pynndescent_graph, {"n_neighbors": 30}),
    ("pynndescent", pynndescent_graph, {"n_neighbors": 40}),
    ("pynndescent", pynndescent_graph, {"n_neighbors": 60}),
    ("faiss HNSW", hnsw_graph, {"ef_search": 32}),
    ("faiss HNSW", hnsw_graph, {"ef_search": 64}),
    ("faiss HNSW", hnsw_graph, {"ef_search": 128}),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, nargs="+", default=[10])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    from embgeo.analysis import exact_knn, recall_at_k
    from embgeo.analysis.datasets import make_anisotropic
    from machine import machine_info

    x = make_anisotropic(args.n, args.dim, random_state=args.seed)
    rows_sample = np.sort(np.random.default_rng(1).choice(args.n, size=min(SAMPLE, args.n), replace=False))
    warm = x[:min(WARMUP_ROWS, args.n // 2)]
    results = []
    for k in args.k:
        truth = exact_knn(x, k=k, metric="cosine", query_indices=rows_sample, progress=False).indices
        for name, fn, params in ENGINES:
            fn(warm, k, **params)  # compile and warm, untimed
            t0 = time.perf_counter()
            ids, setting = fn(x, k, **params)
            seconds = time.perf_counter() - t0
            row = {"engine": name, "k": k, "setting": setting, "seconds": seconds,
                   "recall_at_k": recall_at_k(ids[rows_sample], truth)}
            results.append(row)
            print(json.dumps(row), flush=True)
    out = {"n": args.n, "dim": args.dim, "seed": args.seed, "sample": int(len(rows_sample)),
           "machine": machine_info("numpy", "faiss", "pynndescent", "numba"), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"ann_peers_n{args.n}_d{args.dim}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    lines = ["# All-points k-NN graph: embgeo's approximate join against pynndescent and faiss HNSW", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} cores; faiss {m['faiss']}, pynndescent "
             f"{m['pynndescent']}, numba {m['numba']}. Data: make_anisotropic({args.n:,}, {args.dim}), seed "
             f"{args.seed}, cosine. Recall@k on the same {len(rows_sample):,} rows against exact search.", "",
             "| k | engine | setting | seconds | recall@k |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['k']} | {r['engine']} | {r['setting']} | {r['seconds']:.1f} | {r['recall_at_k']:.3f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
