"""The report on a Dask LocalCluster against the single-process report, on the same file, in one run.

    python benchmarks/bench_dask.py [--n 200000] [--workers 2] [--dim 384]
    python benchmarks/bench_dask.py --approximate --n 1000000      # the approximate report

For each n it writes (once, then reuses) the ``make_anisotropic`` rows of ``bench_scale.py`` to a float32
``.npy`` in ``benchmarks/.data``, then runs ``geometry_report(load(path))`` in this process and
``geometry_report(load(path), cluster=client)`` on a ``LocalCluster(n_workers=--workers,
threads_per_worker=1, processes=True)`` with one-threaded kernels (the workers map the file
themselves). It records both wall
times and each part's, their ratio (the issue's goal: at most 1.3 x), the largest relative difference
between the two reports' numbers, and, from Dask's task stream, each kind of task's count, mean
compute seconds and bytes of its results (the inputs of the scaling model in ``benchmarks/README.md``).
Results go to ``benchmarks/results/dask_d{dim}.{json,md}`` with the machine and the date (sizes not run
this time are kept from the previous file).

The single-process report uses both cores in one process (numba and BLAS threads); the cluster's two
workers have one thread each, so the ratio is the engine's overhead (scheduling, pickling partial
lists, the tree merges, one task per chunk pair) on the same hardware.

``--approximate`` runs ``geometry_report(exact=False)`` three ways: in this process with the default
(symmetric) join, in this process with the blocked join (``memory_limit`` of 1 GiB, as
``bench_scale.py``'s bounded case), and on the cluster, whose join is the blocked one, block by block on
the workers (``dask_approximate_knn``). Two ratios: against the default, what a user gains or loses by
moving to the cluster; against the blocked join, the engine's overhead on the same algorithm. Results
go to ``dask_approximate_d{dim}.{json,md}``; the numbers are compared with the blocked report's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale import write_anisotropic  # noqa: E402
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"


def _numbers(d: dict, prefix: str = ""):
    for key, value in d.items():
        if key in ("timings", "seconds", "backend", "source", "name", "notes"):
            continue
        if isinstance(value, dict):
            yield from _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def _largest_difference(a: dict, b: dict) -> tuple[str, float]:
    worst, where = 0.0, ""
    na, nb = dict(_numbers(a)), dict(_numbers(b))
    for key in na.keys() & nb.keys():
        scale = max(abs(na[key]), abs(nb[key]), 1e-12)
        rel = abs(na[key] - nb[key]) / scale
        if rel > worst:
            worst, where = rel, key
    return where, worst


def _task_costs(stream: list[dict]) -> dict:
    """Per task prefix (the function's name): count, mean compute seconds, mean result bytes."""
    from dask.utils import key_split

    costs = defaultdict(lambda: {"count": 0, "compute_s": 0.0, "bytes": 0})
    for task in stream:
        prefix = key_split(task["key"])
        c = costs[prefix]
        c["count"] += 1
        c["compute_s"] += sum(s["stop"] - s["start"] for s in task.get("startstops", ()) if s["action"] == "compute")
        c["bytes"] += task.get("nbytes", 0) or 0
    return {p: {"count": c["count"], "mean_compute_s": c["compute_s"] / c["count"],
                "mean_result_bytes": c["bytes"] / c["count"]} for p, c in sorted(costs.items())}


def _path(n: int, dim: int) -> Path:
    path = HERE / ".data" / f"anisotropic_n{n}_d{dim}_s0.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_anisotropic(path, n, dim, 0)
    return path


def run_approximate(n: int, dim: int, workers: int, k: int) -> dict:
    import distributed

    from embgeo.analysis import geometry_report, load
    from embgeo.analysis.distributed import local_cluster

    path = _path(n, dim)
    load_before = os.getloadavg()[0]
    runs = {}
    for name, extra in (("default", {}), ("blocked", {"memory_limit": 2**30})):
        t0 = time.perf_counter()
        es = load(path)
        report = geometry_report(es, k=k, exact=False, progress=False, **extra)
        runs[name] = {"s": time.perf_counter() - t0, "report": report,
                      "backend": es.cached_neighbors(report.table_k, exact=False).backend}
    with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(workers)
        with distributed.get_task_stream(client) as stream:
            t0 = time.perf_counter()
            es = load(path)
            report = geometry_report(es, k=k, exact=False, progress=False, cluster=client)
            runs["cluster"] = {"s": time.perf_counter() - t0, "report": report,
                               "backend": es.cached_neighbors(report.table_k, exact=False).backend}
        costs = _task_costs(stream.data)
    where, worst = _largest_difference(runs["blocked"]["report"].to_dict(), runs["cluster"]["report"].to_dict())
    return {"n": n, "dim": dim, "workers": workers, "k": k,
            **{f"{name}_s": r["s"] for name, r in runs.items()},
            **{f"{name}_recall": r["report"].recall for name, r in runs.items()},
            **{f"{name}_backend": r["backend"] for name, r in runs.items()},
            **{f"{name}_parts": r["report"].timings for name, r in runs.items()},
            "ratio_to_default": runs["cluster"]["s"] / runs["default"]["s"],
            "ratio_to_blocked": runs["cluster"]["s"] / runs["blocked"]["s"],
            "largest_relative_difference": worst, "largest_difference_in": where, "tasks": costs,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "date_utc": machine_info()["date_utc"]}


def _approximate_markdown(out: dict) -> list[str]:
    m = out["machine"]
    lines = [f"# The approximate report on a Dask LocalCluster against one process (d = {out['dim']})", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, "
             f"dask {m['dask']}, distributed {m['distributed']}. geometry_report(load(path), exact=False): "
             "default = one process, the symmetric join; blocked = one process, memory_limit 1 GiB (the blocked "
             "join); cluster = LocalCluster(workers, 1 thread each, processes), the blocked join's blocks on the "
             "workers, which map the file. Largest difference: cluster against blocked.", "",
             "| n | workers | default s (recall) | blocked s (recall) | cluster s (recall) | cluster / default | "
             "cluster / blocked | block tasks: count, mean s | largest rel. difference | load average before, "
             "after | run (UTC) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        blocks = r["tasks"].get("join_and_rerank", {"count": 0, "mean_compute_s": 0.0})  # key_split drops the "_"
        lines.append(
            f"| {r['n']:,} | {r['workers']} | {r['default_s']:.1f} ({r['default_recall']:.3f}) | "
            f"{r['blocked_s']:.1f} ({r['blocked_recall']:.3f}) | {r['cluster_s']:.1f} ({r['cluster_recall']:.3f}) | "
            f"{r['ratio_to_default']:.2f} | {r['ratio_to_blocked']:.2f} | {blocks['count']}, "
            f"{blocks['mean_compute_s']:.2f} | {r['largest_relative_difference']:.1e} ({r['largest_difference_in']}) | "
            f"{', '.join(f'{v:.1f}' for v in r['load_average'])} | {r['date_utc'][:16]} |")
    lines += ["", "Backends: " + "; ".join(f"{name}: {out['results'][-1][name + '_backend']}"
                                        for name in ("default", "blocked", "cluster")) if out["results"] else ""]
    return lines


def run(n: int, dim: int, workers: int, k: int) -> dict:
    import distributed

    from embgeo.analysis import geometry_report, load
    from embgeo.analysis.distributed import local_cluster
    from embgeo.analysis.distributed.arrays import default_chunk_rows

    path = _path(n, dim)
    load_before = os.getloadavg()[0]  # other work on the machine skews the ratio: recorded beside it
    t0 = time.perf_counter()
    here = geometry_report(load(path), k=k, progress=False)
    t_here = time.perf_counter() - t0
    with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(workers)
        with distributed.get_task_stream(client) as stream:
            t0 = time.perf_counter()
            there = geometry_report(load(path), k=k, progress=False, cluster=client)
            t_there = time.perf_counter() - t0
        costs = _task_costs(stream.data)
    where, worst = _largest_difference(here.to_dict(), there.to_dict())
    return {"n": n, "dim": dim, "workers": workers, "chunk_rows": default_chunk_rows(n), "k": k,
            "single_process_s": t_here, "cluster_s": t_there, "ratio": t_there / t_here,
            "single_process_parts": here.timings, "cluster_parts": there.timings,
            "largest_relative_difference": worst, "largest_difference_in": where, "tasks": costs,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "date_utc": machine_info()["date_utc"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[200_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--approximate", action="store_true", help="the approximate report (see the module docstring)")
    args = p.parse_args(argv)
    stem = args.out / f"dask_{'approximate_' if args.approximate else ''}d{args.dim}"
    previous = json.loads(stem.with_suffix(".json").read_text()).get("results", []) \
        if stem.with_suffix(".json").exists() else []
    rows = []
    for n in args.n:
        print(f"[{time.strftime('%H:%M:%S')}] {n:,} x {args.dim} ...", file=sys.stderr, flush=True)
        rows.append((run_approximate if args.approximate else run)(n, args.dim, args.workers, args.k))
        print("    " + json.dumps({k: v for k, v in rows[-1].items() if k != "tasks"}), file=sys.stderr, flush=True)
    same = (lambda r: (r["n"], r["workers"])) if args.approximate else (lambda r: (r["n"], r["workers"], r["chunk_rows"]))
    done = {same(r) for r in rows}
    rows = sorted(rows + [r for r in previous if same(r) not in done], key=lambda r: (r["n"], r["workers"]))
    out = {"dim": args.dim, "machine": machine_info("numpy", "torch", "dask", "distributed"), "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    if args.approximate:
        lines = _approximate_markdown(out)
        stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    m = out["machine"]
    lines = [f"# The exact report on a Dask LocalCluster against one process (d = {args.dim})", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, "
             f"dask {m['dask']}, distributed {m['distributed']}. One process: geometry_report(load(path)); "
             "cluster: the same with cluster=LocalCluster(workers, 1 thread each, processes), the workers "
             "mapping the file.", "",
             "| n | workers | chunk rows | one process s | cluster s | ratio | largest rel. difference | "
             "chunk-pair tasks (diagonal + other): count, mean s | load average before, after | run (UTC) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        none = {"count": 0, "mean_compute_s": 0.0}
        pair, diag = r["tasks"].get("pair", none), r["tasks"].get("diagonal", none)  # key_split drops the "_"
        count = pair["count"] + diag["count"]
        mean = (pair["count"] * pair["mean_compute_s"] + diag["count"] * diag["mean_compute_s"]) / max(count, 1)
        load = ", ".join(f"{v:.1f}" for v in r["load_average"]) if "load_average" in r else "not recorded"
        lines.append(f"| {r['n']:,} | {r['workers']} | {r['chunk_rows']:,} | {r['single_process_s']:.1f} | "
                     f"{r['cluster_s']:.1f} | {r['ratio']:.2f} | {r['largest_relative_difference']:.1e} "
                     f"({r['largest_difference_in']}) | {diag['count']} + {pair['count']}, {mean:.2f} | {load} | "
                     f"{r['date_utc'][:16]} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
