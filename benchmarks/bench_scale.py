"""The report at scale: 100,000 to 10,000,000 x 384 from a memory-mapped file.

    python benchmarks/bench_scale.py [--n 100000 1000000] [--cases report sampled dashboard]
                                     [--dim 384] [--data-dir DIR] [--out DIR]

For each n it writes (once, then reuses) ``make_anisotropic``-distributed rows to a float32 ``.npy``
in ``--data-dir`` (default ``benchmarks/.data``, git-ignored), generated block by block so no n x d
float64 array is ever held, and runs each case in a child process of its own:

* ``report``: ``geometry_report(load(path), exact=False)``, the full report on the approximate table;
* ``bounded``: the same with ``memory_limit`` = 1 GiB (``BOUNDED_LIMIT``), where the approximate join
  holds a block of points' candidate buffers at a time instead of every point's;
* ``sampled``: ``sampled_report(load(path))``, streamed moments, 2,000 queries against all rows and a
  100,000-row subsample's graph, with the intervals' widths;
* ``dashboard``: the dashboard's first Overview (``DashboardController(path).cards()``, headless, the
  approximate table above 200,000 rows): the time to the first numbers.

Each gives wall time, each part's time, the measured recall and the child's peak resident memory
(``ru_maxrss``; the mapped file's pages count while they are resident, so the input size is printed
beside it). Results go to ``benchmarks/results/scale_d{dim}.{json,md}`` with the machine and the date
(cases and sizes not run this time are kept from the previous file).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from machine import machine_info

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BLOCK_ROWS = 250_000
#: --cases choices -> the case names in the results.
CASE_NAMES = {"report": "report_approx", "bounded": "report_approx_bounded", "sampled": "report_sampled",
              "dashboard": "dashboard_first_overview"}
#: memory_limit of the bounded case: the goal is peak RSS <= input + 1.5 GB, and the rest of the
#: report (the sample search, isotropy, the statistics on the table) needs some room beside the join.
BOUNDED_LIMIT = 2**30


def write_anisotropic(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """``make_anisotropic(n, dim)``'s distribution written block by block into a float32 .npy file.

    The population (mean direction, power-law spectrum, rotation, rogue dimensions) comes from one
    seeded draw; block b's Gaussian rows from the seed (seed, b), so a file is the same whatever
    machine writes it.
    """
    from embgeo.analysis.datasets import make_anisotropic

    _, truth = make_anisotropic(2, dim, random_state=seed, return_truth=True)
    scale = np.sqrt(truth.eigenvalues)
    tmp = path.with_suffix(".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    for b, start in enumerate(range(0, n, BLOCK_ROWS)):
        rows = min(BLOCK_ROWS, n - start)
        z = np.random.default_rng([seed, b]).standard_normal((rows, dim))
        out[start:start + rows] = truth.mean + (z * scale) @ truth.principal_axes
    out.flush()
    del out
    tmp.rename(path)


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


class AnonymousPeak:
    """Peak anonymous resident memory (``RssAnon``: the process's own arrays, not the mapped file's pages
    in the page cache), sampled every 0.2 s in a thread; 0 where /proc is not there."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self.now())


def case_report(path: str, k: int, memory_limit: int | None = None) -> dict:
    from embgeo.analysis import geometry_report, load

    es = load(path)
    t0 = time.perf_counter()
    report = geometry_report(es, k=k, exact=False, progress=False, memory_limit=memory_limit)
    table = es.cached_neighbors(min(max(k, 32), es.n - 1), exact=False)  # the report's table
    return {"seconds": time.perf_counter() - t0, "recall": report.recall, "timings": report.timings,
            "notes": list(report.notes), "peak_rss_bytes": _peak_rss_bytes(), "memory_limit": memory_limit,
            "backend": None if table is None else table.backend,
            "values": {"isoscore": report.isotropy.isoscore, "twonn": report.intrinsic_dimension.twonn,
                       "hubness_skewness": report.hubness.skewness}}


def case_bounded(path: str, k: int) -> dict:
    return case_report(path, k, memory_limit=BOUNDED_LIMIT)


def case_sampled(path: str, k: int) -> dict:
    from embgeo.analysis import load, sampled_report

    es = load(path)
    t0 = time.perf_counter()
    report = sampled_report(es, k=k, progress=False)
    idim, conc, hub = report.intrinsic_dimension, report.concentration, report.hubness
    return {"seconds": time.perf_counter() - t0, "recall": report.recall, "timings": report.timings,
            "notes": list(report.notes), "peak_rss_bytes": _peak_rss_bytes(),
            "values": {"isoscore": report.isotropy.isoscore, "twonn": idim.twonn, "twonn_ci": list(idim.twonn_ci),
                       "mle_ci": list(idim.mle_ci), "relative_contrast_ci": list(conc.relative_contrast_ci),
                       "hubness_skewness": hub.skewness, "hubness_ci": list(hub.skewness_ci),
                       "hubness_n": hub.n, "queries": idim.sample_size}}


def case_dashboard(path: str, k: int) -> dict:
    from embgeo.widgets._controller import DashboardController

    t0 = time.perf_counter()
    c = DashboardController(path, background=False)
    cards = c.cards()
    seconds = time.perf_counter() - t0
    table = c.shared_table()
    return {"seconds": seconds, "recall": None if table.exact else table.recall,
            "timings": {"first_overview": seconds}, "notes": [c.table_note()], "peak_rss_bytes": _peak_rss_bytes(),
            "values": {v.title: v.value for v in cards}, "exact": c.exact}


def spawn(case: str, path: Path, k: int, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--child", case, "--data", str(path), "--k", str(k)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:] or ["no output"]
    return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--cases", nargs="+", choices=tuple(CASE_NAMES), default=list(CASE_NAMES))
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    p.add_argument("--timeout", type=int, default=3 * 3600)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        anon = AnonymousPeak()
        result = globals()[f"case_{args.child}"](args.data, args.k)
        result["peak_anon_bytes"] = anon.stop()
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    args.data_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scale_d{args.dim}"
    previous = json.loads(stem.with_suffix(".json").read_text()).get("results", []) \
        if stem.with_suffix(".json").exists() else []
    rows = []
    for n in args.n:
        path = args.data_dir / f"anisotropic_n{n}_d{args.dim}_s{args.seed}.npy"
        if not path.exists():
            print(f"[{time.strftime('%H:%M:%S')}] writing {path} ...", file=sys.stderr, flush=True)
            write_anisotropic(path, n, args.dim, args.seed)
        for case in args.cases:
            print(f"[{time.strftime('%H:%M:%S')}] {case} on {n:,} x {args.dim} ...", file=sys.stderr, flush=True)
            result = spawn(case, path, args.k, args.timeout)
            result.update(case=CASE_NAMES[case], n=n, dim=args.dim, input_bytes=n * args.dim * 4,
                          date_utc=machine_info()["date_utc"])
            rows.append(result)
            print("    " + json.dumps({k: v for k, v in result.items() if k != "notes"}), file=sys.stderr, flush=True)

    done = {(r["case"], r["n"]) for r in rows}
    rows = sorted(rows + [r for r in previous if (r.get("case"), r.get("n")) not in done],
                  key=lambda r: (list(CASE_NAMES.values()).index(r["case"]) if r["case"] in CASE_NAMES.values()
                                 else 9, r["n"]))
    out = {"dim": args.dim, "k": args.k, "seed": args.seed,
           "machine": machine_info("numpy", "torch", "faiss", "numba"), "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    m, mib = out["machine"], 2**20
    lines = [f"# The report at scale (d = {args.dim}, k = {args.k}, memory-mapped float32 input)", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, torch "
             f"{m['torch']}, faiss {m['faiss']}. report: geometry_report(exact=False); bounded: the same with "
             f"memory_limit = {BOUNDED_LIMIT / 2**30:.0f} GiB (the blocked join); sampled: sampled_report "
             "(2,000 queries, 100,000-row subsample); dashboard: the first Overview, headless.", "",
             "Peak RSS counts the mapped input's resident pages; peak anonymous memory (RssAnon) leaves them out.", "",
             "| case | n | input MiB | seconds | recall | peak RSS MiB | peak anonymous MiB | parts | run (UTC) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['n']:,} | {r['input_bytes'] / mib:.0f} | {r['error']} | | | | | |")
            continue
        parts = ", ".join(f"{name} {sec:.1f}" for name, sec in r["timings"].items())
        recall = "exact" if r.get("recall") is None else f"{r['recall']:.3f}"
        anon = f"{r['peak_anon_bytes'] / mib:.0f}" if r.get("peak_anon_bytes") else "not measured"
        lines.append(f"| {r['case']} | {r['n']:,} | {r['input_bytes'] / mib:.0f} | {r['seconds']:.1f} | {recall} | "
                     f"{r['peak_rss_bytes'] / mib:.0f} | {anon} | {parts} | {r.get('date_utc', '')[:16]} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
