"""Benchmark of geometry_report against the k-NN floor and against reference libraries.

    python benchmarks/bench_report.py [--n 100000] [--dim 384] [--k 10] [--skip-reference]

On an embedding-like synthetic set (``datasets.make_anisotropic``: common direction, power-law
spectrum, rogue dimensions) it measures, each case in its own subprocess so that its peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which sees BLAS, torch and faiss buffers that
tracemalloc cannot) belongs to that case alone:

* ``baseline``      loading the data and importing embgeo, torch and faiss, nothing else.
* ``faiss_floor``   faiss ``IndexFlatIP`` self-join k-NN of the unit vectors, as many columns as the
                    report's shared table: the time no exact report can beat.
* ``report_exact``  the full :func:`geometry_report` with exact neighbours (goal: <= 1.25 x floor).
* ``report_approx`` the full report with approximate (IVF join) neighbours, after a warm-up run on
                    a slice; its measured recall (goal: < 15 s at recall >= 0.95).
* ``reference``     the same quantities through scikit-dimension (TwoNN, MLE), IsoScore and
                    scikit-learn (PCA, brute-force cosine k-NN for hubness), on the unit vectors.

Every case (except the baseline) first runs once on a slice (5,000 rows, at most n / 2) so imports, thread pools and
kernels are warm; only the full-size run is timed. Results go to ``benchmarks/results/`` as JSON and
a markdown table, with the machine (cores, CPU model, library versions) and the date.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = ("baseline", "faiss_floor", "report_exact", "report_approx", "reference")
RESULTS = Path(__file__).resolve().parent / "results"
WARMUP_ROWS = 5_000
GOAL_EXACT_RATIO = 1.25
GOAL_APPROX_SECONDS = 15.0
GOAL_APPROX_RECALL = 0.95


# --------------------------------------------------------------------------------------------- cases (child)


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes, Linux: KiB


def _warmup(x: np.ndarray) -> np.ndarray:
    return x[:min(WARMUP_ROWS, len(x) // 2)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _table_k(n: int, k: int) -> int:
    from embgeo.analysis.report import GRIDE_MAX_RANK

    return min(max(k, GRIDE_MAX_RANK), n - 1)


def case_baseline(x, args) -> dict:
    import faiss  # noqa: F401  the imports every other case pays for
    import torch  # noqa: F401

    import embgeo.analysis  # noqa: F401

    return {"seconds": 0.0}


def case_faiss_floor(x, args) -> dict:
    import faiss

    def join(data):
        u = np.ascontiguousarray(_unit(data), dtype=np.float32)
        index = faiss.IndexFlatIP(u.shape[1])
        index.add(u)
        return index.search(u, _table_k(len(data), args.k) + 1)  # + 1: each point finds itself

    join(_warmup(x))
    t0 = time.perf_counter()
    join(x)
    return {"seconds": time.perf_counter() - t0, "table_k": _table_k(len(x), args.k), "faiss_threads":
            faiss.omp_get_max_threads()}


def _report_case(x, args, exact: bool) -> dict:
    from embgeo.analysis import EmbeddingSet
    from embgeo.analysis import geometry_report

    geometry_report(EmbeddingSet(_warmup(x)), k=args.k, exact=exact, sample=args.sample)
    es = EmbeddingSet(x)
    t0 = time.perf_counter()
    report = geometry_report(es, k=args.k, exact=exact, sample=args.sample)
    seconds = time.perf_counter() - t0
    d = report.to_dict()
    return {
        "seconds": seconds, "recall": report.recall, "timings": report.timings, "table_k": report.table_k,
        "values": {
            "isoscore": d["isotropy"]["isoscore"], "mean_cosine": d["isotropy"]["mean_cosine"],
            "pca_95": d["intrinsic_dimension"]["pca_95"], "twonn": d["intrinsic_dimension"]["twonn"],
            "twonn_linefit": d["intrinsic_dimension"]["twonn_linefit"], "mle": d["intrinsic_dimension"]["mle"],
            "hubness_skewness": d["hubness"]["skewness"],
            "relative_contrast_median": d["concentration"]["relative_contrast_median"],
        },
    }


def case_report_exact(x, args) -> dict:
    return _report_case(x, args, exact=True)


def case_report_approx(x, args) -> dict:
    return _report_case(x, args, exact=False)


def case_reference(x, args) -> dict:
    import skdim
    from IsoScore.IsoScore import IsoScore
    from scipy.stats import skew
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    def hubness(u):
        nn = NearestNeighbors(n_neighbors=args.k, algorithm="brute", metric="cosine").fit(u)
        ids = nn.kneighbors(return_distance=False)  # without X: each point's own row is excluded
        return float(skew(np.bincount(ids.ravel(), minlength=len(u))))

    parts = {
        "isoscore": lambda u: float(IsoScore(u)),
        "pca_95": lambda u: int(PCA(n_components=0.95, svd_solver="full").fit(u).n_components_),
        "twonn_linefit": lambda u: float(skdim.id.TwoNN().fit(u).dimension_),
        "mle": lambda u: float(skdim.id.MLE(K=args.k).fit(u).dimension_),
        "hubness_skewness": hubness,
    }
    small = _unit(_warmup(x))
    for fn in parts.values():
        fn(small)
    u = _unit(x)  # euclidean distance of unit vectors = the chord distance embgeo uses for cosine
    values, timings = {}, {}
    for name, fn in parts.items():
        t0 = time.perf_counter()
        values[name] = fn(u)
        timings[name] = time.perf_counter() - t0
    return {"seconds": sum(timings.values()), "timings": timings, "values": values}


def run_case(args) -> None:
    x = np.load(args.data)
    rss_data = _peak_rss_bytes()
    out = globals()[f"case_{args.case}"](x, args)
    out.update(case=args.case, peak_rss_bytes=_peak_rss_bytes(), rss_after_load_bytes=rss_data)
    print("RESULT " + json.dumps(out))


# --------------------------------------------------------------------------------------------- driver (parent)


def machine_info() -> dict:
    import torch

    from machine import machine_info as common

    return {**common("numpy", "torch", "faiss", "sklearn"), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def spawn(case: str, data: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--data", str(data), "--k", str(args.k),
           "--sample", str(args.sample)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"case": case, "error": f"timed out after {args.timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"case": case, "error": f"exit {done.returncode}: {tail[0]}"}


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def summarise(res: dict, n: int, dim: int) -> dict:
    floor = res.get("faiss_floor", {}).get("seconds")
    exact = res.get("report_exact", {}).get("seconds")
    approx = res.get("report_approx", {})
    ref = res.get("reference", {}).get("seconds")
    return {
        "input_bytes": n * dim * 4,
        "exact_over_floor": exact / floor if exact and floor else None,
        "exact_goal_met": bool(exact and floor and exact / floor <= GOAL_EXACT_RATIO),
        "approx_seconds": approx.get("seconds"), "approx_recall": approx.get("recall"),
        "approx_goal_met": bool(approx.get("seconds") is not None and approx["seconds"] < GOAL_APPROX_SECONDS
                                and (approx.get("recall") or 0) >= GOAL_APPROX_RECALL),
        "exact_over_reference": exact / ref if exact and ref else None,
        # what the case itself added (its imports and work) on top of the interpreter, numpy and the data
        "peak_over_loaded_bytes": {c: r["peak_rss_bytes"] - r["rss_after_load_bytes"] for c, r in res.items()
                                   if "peak_rss_bytes" in r},
    }


def markdown(result: dict) -> str:
    m, s, res = result["machine"], result["summary"], result["cases"]
    mb = 2**20
    lines = [
        f"# geometry_report benchmark, n = {result['n']:,}, d = {result['dim']}, k = {result['k']}",
        "",
        f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable of {m['logical_cores']} logical cores; "
        f"torch {m['torch']} ({m['torch_threads']} threads), faiss {m['faiss']}, numpy {m['numpy']}.",
        f"Input: {s['input_bytes'] / mb:.1f} MiB float32 (make_anisotropic, seed {result['seed']}).",
        "",
        "| case | seconds | ratio to floor | recall | peak RSS (MiB) | peak - after loading data (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    floor = res.get("faiss_floor", {}).get("seconds")
    for case in CASES:
        r = res.get(case)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {case} | {r['error']} | | | | |")
            continue
        ratio = r["seconds"] / floor if floor and case != "baseline" else None
        extra = s["peak_over_loaded_bytes"].get(case)
        lines.append(f"| {case} | {_fmt(r['seconds'], '.2f')} | {_fmt(ratio, '.2f')} | {_fmt(r.get('recall'), '.3f')}"
                     f" | {r['peak_rss_bytes'] / mb:.0f} | {_fmt(None if extra is None else extra / mb, '.0f')} |")
    lines += [
        "",
        f"Goals: exact report <= {GOAL_EXACT_RATIO} x floor: **{_fmt(s['exact_over_floor'], '.2f')}x** "
        f"({'met' if s['exact_goal_met'] else 'not met'}); approximate report < {GOAL_APPROX_SECONDS:.0f} s at "
        f"recall >= {GOAL_APPROX_RECALL}: **{_fmt(s['approx_seconds'], '.1f')} s at {_fmt(s['approx_recall'], '.3f')}**"
        f" ({'met' if s['approx_goal_met'] else 'not met'}).",
        f"Exact report time / reference libraries' time (same quantities): **{_fmt(s['exact_over_reference'], '.2f')}**.",
    ]
    ours, ref = res.get("report_exact", {}).get("values", {}), res.get("reference", {})
    if ref.get("values"):
        lines += ["", "| quantity | embgeo | reference | reference seconds |", "|---|---|---|---|"]
        for name, value in ref["values"].items():
            lines.append(f"| {name} | {_fmt(ours.get(name), '.4g')} | {_fmt(value, '.4g')} | "
                         f"{_fmt(ref['timings'][name], '.2f')} |")
    for case in ("report_exact", "report_approx"):
        if res.get(case, {}).get("timings"):
            parts = ", ".join(f"{k} {v:.2f}" for k, v in res[case]["timings"].items())
            lines += ["", f"{case} parts (s): {parts}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--sample", type=int, default=2000, help="query sample of the report (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--skip-reference", action="store_true", help="leave out the reference libraries")
    p.add_argument("--timeout", type=int, default=3600, help="seconds allowed per case")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        run_case(args)
        return 0

    from embgeo.analysis.datasets import make_anisotropic

    cases = [c for c in args.cases if not (args.skip_reference and c == "reference")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, make_anisotropic(args.n, args.dim, random_state=args.seed))
        for case in cases:
            print(f"[{time.strftime('%H:%M:%S')}] {case} ...", file=sys.stderr, flush=True)
            results[case] = spawn(case, data, args)
            print(f"    {json.dumps({k: v for k, v in results[case].items() if k != 'values'})}", file=sys.stderr)
    out = {"n": args.n, "dim": args.dim, "k": args.k, "sample": args.sample, "seed": args.seed,
           "machine": machine_info(), "cases": results}
    out["summary"] = summarise(results, args.n, args.dim)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"report_n{args.n}_d{args.dim}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
