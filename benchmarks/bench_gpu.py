"""The torch-CUDA exact k-NN path: agreement with the host kernels, and its speed.

    python benchmarks/bench_gpu.py [--n 100000] [--dim 384] [--big 400000] [--out DIR]

Needs a CUDA device that torch sees (it exits with a message otherwise); CI has none, so this is a
benchmark, not a test. On ``datasets.make_anisotropic(n, dim, seed 0)`` it

* searches the exact self-join under each metric (cosine with the report's 32 columns, euclidean and
  dot with 10) on the GPU and on the host (``backend="numpy"``: numba folds) and records the times,
  the share of identical neighbours and the largest distance difference;
* times a ``--big`` self-join on the GPU alone (cosine, k = 10);
* times the full exact :func:`geometry_report` with the GPU neighbour search (the other parts run on
  the host CPU).

Every GPU search runs once on a slice first, so CUDA context, kernels and allocator are warm.
Results go to ``benchmarks/results/gpu_n{n}_d{dim}.{json,md}`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _agreement(a, b) -> dict:
    """Share of each row's neighbours found by both, and the largest distance difference."""
    same = np.mean([len(np.intersect1d(x, y)) / len(x) for x, y in zip(a.indices, b.indices)])
    return {"same_neighbours": float(same),
            "max_abs_distance_diff": float(np.nanmax(np.abs(a.distances - b.distances)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--big", type=int, default=400_000, help="rows of the GPU-only search (0: skip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA device; nothing to measure", file=sys.stderr)
        return 2
    from embgeo.analysis import exact_knn, geometry_report
    from embgeo.analysis.datasets import make_anisotropic

    x = make_anisotropic(args.n, args.dim, random_state=0)
    warm = x[:min(5_000, args.n // 2)]
    rows = {}
    for metric, k in (("cosine", 32), ("euclidean", 10), ("dot", 10)):
        exact_knn(warm, k=k, metric=metric, backend="torch-cuda")
        exact_knn(warm, k=k, metric=metric, backend="numpy")
        gpu, t_gpu = _timed(lambda: exact_knn(x, k=k, metric=metric, backend="torch-cuda"))
        host, t_host = _timed(lambda: exact_knn(x, k=k, metric=metric, backend="numpy"))
        rows[f"self_join_{metric}_k{k}"] = {"gpu_seconds": t_gpu, "host_seconds": t_host, **_agreement(gpu, host)}
        print(metric, rows[f"self_join_{metric}_k{k}"], flush=True)
    if args.big:
        xb = make_anisotropic(args.big, args.dim, random_state=0)
        _, t_big = _timed(lambda: exact_knn(xb, k=10, metric="cosine", backend="torch-cuda"))
        rows[f"self_join_cosine_k10_n{args.big}"] = {"gpu_seconds": t_big}
        print("big", t_big, flush=True)
        del xb
    geometry_report(warm, exact=True, progress=False)
    rep, t_rep = _timed(lambda: geometry_report(x, exact=True, progress=False))
    rows["report_exact"] = {"seconds": t_rep, "timings": rep.timings}
    print("report", t_rep, rep.timings, flush=True)

    machine = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name(0), "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": np.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_n{args.n}_d{args.dim}"
    stem.with_suffix(".json").write_text(json.dumps({"machine": machine, "n": args.n, "dim": args.dim,
                                                     "results": rows}, indent=2))
    lines = [f"# torch-CUDA exact k-NN, n = {args.n:,}, d = {args.dim}", "",
             f"{machine['date']}; {machine['gpu']}; {machine['cpu_cores']} CPU cores; torch {machine['torch']}.", "",
             "| case | GPU s | host s | same neighbours | max distance diff |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        if name.startswith("self_join"):
            nan = float("nan")
            lines.append(f"| {name} | {r['gpu_seconds']:.2f} | {r.get('host_seconds', nan):.2f} | "
                         f"{r.get('same_neighbours', nan):.5f} | {r.get('max_abs_distance_diff', nan):.2g} |")
    lines += ["", f"Full exact geometry_report with the GPU search: {rows['report_exact']['seconds']:.1f} s; parts: "
              + ", ".join(f"{k} {v:.2f}" for k, v in rows["report_exact"]["timings"].items())]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
