"""Where the approximate self-join's time goes: ``approximate_knn`` part by part, for several settings.

    python benchmarks/bench_join.py                                   # 1,000,000 x 384, k = 32, defaults
    python benchmarks/bench_join.py --lists 1000 2000 --candidates 128 64
    python benchmarks/bench_join.py --n 100000 --out /tmp/b          # a quick check
    python benchmarks/bench_join.py --lists 0 2000 --no-admissions   # + the join with nothing admitted

The rows are ``make_anisotropic``'s distribution in a memory-mapped float32 ``.npy`` (written once by
``bench_scale.write_anisotropic``, the file the report benchmark reads). Each setting (every ``--lists``
with every ``--candidates``; ``0`` means the default) runs ``approximate_knn(x, k, metric="cosine",
target_recall=0.95)`` as the report's table does, except that it searches its own two query samples
exactly (the report hands it the query sample's truth). Each part is timed by wrapping the module's own
functions for the run: the principal basis, the samples' exact search, the projection, k-means, the
tuning, the join (symmetric or blocked) and the exact re-ranking. The table's time, the settings the
tuning chose and the measured recall come with them. ``--no-admissions`` then runs each symmetric join
once more on the same inputs with every threshold at +inf: nothing enters a candidate buffer, so its
time is the products, the gathers and the screening pass, and the difference is the admissions'. Results go to ``results/join_n{n}_d{dim}.{json,md}``
with the machine and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scale import write_anisotropic  # noqa: E402
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"
#: The functions of embgeo.analysis.neighbors.approximate whose time is reported, and their part's name.
PARTS = {"_principal_basis": "basis", "exact_knn": "samples' exact search", "_project": "projection",
         "kmeans": "k-means", "tune_probe": "tuning", "symmetric_join": "join", "blocked_join": "join"}


@contextlib.contextmanager
def timed_parts(module, times: dict):
    """Wrap ``module``'s PARTS (and the re-ranking) so that each call adds its seconds to ``times``."""
    def wrap(part, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                times[part] = times.get(part, 0.0) + time.perf_counter() - t0
        return timed

    saved = {name: getattr(module, name) for name in PARTS}
    rerank = module.Reranker.__call__
    try:
        for name, part in PARTS.items():
            setattr(module, name, wrap(part, saved[name]))
        module.Reranker.__call__ = wrap("re-ranking", rerank)
        yield times
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)
        module.Reranker.__call__ = rerank


def run(x, k: int, lists: int | None, candidates: int | None, no_admissions: bool = False) -> dict:
    from embgeo.analysis.neighbors import approximate

    times: dict = {}
    captured: dict = {}
    join = approximate.symmetric_join
    if no_admissions:  # keep the symmetric join's inputs (it reorders the projection in place)
        def capture(proj, centroids, lists_, n_probe, metric, n_cand, floor, progress):
            captured.update(args=(proj.copy(), centroids, lists_.copy(), n_probe, metric, n_cand))
            return join(proj, centroids, lists_, n_probe, metric, n_cand, floor, progress)
        approximate.symmetric_join = capture
    try:
        with timed_parts(approximate, times):
            t0 = time.perf_counter()
            table = approximate.approximate_knn(x, k=k, metric="cosine", n_lists=lists, candidates=candidates,
                                                target_recall=0.95, progress=False)
            seconds = time.perf_counter() - t0
    finally:
        approximate.symmetric_join = join
    if captured:
        # the same join with every threshold above every score: no cell is admitted, so what is left is
        # the products, the gathers and the screening pass (the rest of the join's time is admissions)
        t0 = time.perf_counter()
        join(*captured.pop("args"), np.float32(np.inf), False)
        times["join, no admissions"] = time.perf_counter() - t0
    return {"lists": lists or "default", "candidates": candidates or "default", "seconds": round(seconds, 2),
            "recall": round(float(table.recall), 4), "chosen": table.backend,
            "parts_s": {part: round(s, 2) for part, s in times.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=32, help="neighbours per point (32: the report's table width)")
    p.add_argument("--lists", type=int, nargs="+", default=[0], help="inverted lists (0: the default)")
    p.add_argument("--candidates", type=int, nargs="+", default=[0], help="candidates per point (0: the default)")
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-admissions", action="store_true",
                   help="also time each symmetric join again with no cell admitted (its products and screening alone)")
    args = p.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    path = args.data_dir / f"anisotropic_n{args.n}_d{args.dim}_s0.npy"  # the file bench_scale.py reads
    if not path.exists():
        write_anisotropic(path, args.n, args.dim)
    x = np.load(path, mmap_mode="r")
    from embgeo.analysis.neighbors import approximate_knn

    approximate_knn(np.array(x[:8192]), k=args.k, progress=False)  # numba compiles its kernels outside the timings
    rows = []
    for lists in args.lists:
        for candidates in args.candidates:
            rows.append(run(x, args.k, lists or None, candidates or None, args.no_admissions))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    out = {"machine": machine_info("numpy", "numba", "torch"), "n": args.n, "dim": args.dim, "k": args.k, "runs": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"join_n{args.n}_d{args.dim}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    names = ["basis", "samples' exact search", "projection", "k-means", "tuning", "join", "re-ranking"]
    if any("join, no admissions" in r["parts_s"] for r in rows):
        names.append("join, no admissions")
    lines = [f"# The approximate self-join part by part ({args.n:,} x {args.dim}, k = {args.k}, cosine, target 0.95)", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores. `approximate_knn` on "
             "make_anisotropic rows from a memory-mapped .npy; each part timed by wrapping its function.", "",
             "| lists | candidates | seconds | recall | chosen | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['lists']} | {r['candidates']} | {r['seconds']:.1f} | {r['recall']:.3f} | {r['chosen']} | "
                     + " | ".join(f"{r['parts_s'].get(part, 0.0):.1f}" for part in names) + " |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
