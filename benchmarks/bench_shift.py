"""shift_report at scale: an N x 384 memory-mapped corpus against N / 10 shifted queries (issue 18).

    python benchmarks/bench_shift.py [--n 1000000] [--dim 384] [--k 10] [--shift 0.25]
                                     [--no-transforms] [--index hnsw] [--data-dir DIR] [--out DIR]

The corpus is ``make_anisotropic``'s distribution written block by block into a float32 ``.npy`` in
``--data-dir`` (default ``benchmarks/.data``, git-ignored; :func:`bench_scale.write_anisotropic`, so the
two benchmarks share files); the queries are fresh rows of the same population moved by ``--shift``
corpus spreads (sqrt of the total variance) along its second principal axis. Both are loaded with
``embgeo.analysis.load`` (memory maps) and ``shift_report`` runs once, in a child process of its own,
with its defaults (1,000-row samples for the MMD and the classifier, 200 permutations, k = 10, the three
transform rows) after a warm-up on 2,000 rows. Wall time, each part's time (``ShiftReport.timings``),
the child's peak resident memory (``ru_maxrss``, which counts the mapped input's resident pages) and its
peak anonymous memory (``RssAnon``, sampled: its own arrays only) go to
``benchmarks/results/shift_n{N}_d{dim}.{json,md}`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_scale import AnonymousPeak, BLOCK_ROWS, _peak_rss_bytes, write_anisotropic  # noqa: E402
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results"


def write_queries(path: Path, n: int, dim: int, shift: float, seed: int = 0) -> None:
    """``n`` new rows of the corpus's population (rows seeded (seed, 10**6 + b), so none repeats a corpus
    row) moved by ``shift`` spreads along the second principal axis, block by block into a .npy file."""
    from embgeo.analysis.datasets import make_anisotropic

    _, truth = make_anisotropic(2, dim, random_state=seed, return_truth=True)
    scale = np.sqrt(truth.eigenvalues)
    move = shift * np.sqrt(truth.eigenvalues.sum()) * truth.principal_axes[1]
    tmp = path.with_suffix(".tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    for b, start in enumerate(range(0, n, BLOCK_ROWS)):
        rows = min(BLOCK_ROWS, n - start)
        z = np.random.default_rng([seed, 10**6 + b]).standard_normal((rows, dim))
        out[start:start + rows] = truth.mean + (z * scale) @ truth.principal_axes + move
    out.flush()
    del out
    tmp.rename(path)


def child(corpus_path: str, queries_path: str, k: int, transforms: bool, index: str | None) -> dict:
    from embgeo.analysis import load, shift_report

    anon = AnonymousPeak()
    corpus, queries = load(corpus_path), load(queries_path)
    shift_report(corpus.vectors[:2000], queries.vectors[:2000], k=k, n_permutations=10, transforms=transforms,
                 progress=False)  # kernels compiled, thread pools started
    t = time.perf_counter()
    r = shift_report(corpus, queries, k=k, transforms=transforms, index=index, progress=False)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "timings": r.timings, "peak_rss_bytes": _peak_rss_bytes(),
            "peak_anon_bytes": anon.stop(), "sample_size": r.sample_size, "n_permutations": r.n_permutations,
            "values": {name: r.to_dict()[name] for name in (
                "centroid_gap_in_spreads", "modality_gap", "frechet_distance", "mmd_rbf", "mmd_p_value",
                "classifier_auc", "knn_ood_rate", "mahalanobis_ood_rate")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="corpus rows (queries: n / 10)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--shift", type=float, default=0.25, help="planted query shift, in corpus spreads")
    p.add_argument("--no-transforms", action="store_true")
    p.add_argument("--index", default=None, help="also score this faiss index kind by bucket (e.g. hnsw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    p.add_argument("--timeout", type=int, default=6 * 3600)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        result = child(*args.child, args.k, not args.no_transforms, args.index)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    args.data_dir.mkdir(parents=True, exist_ok=True)
    n_q = max(10, args.n // 10)
    corpus = args.data_dir / f"anisotropic_n{args.n}_d{args.dim}_s{args.seed}.npy"
    queries = args.data_dir / f"shifted_queries_n{n_q}_d{args.dim}_s{args.seed}_shift{args.shift:g}.npy"
    if not corpus.exists():
        print(f"[{time.strftime('%H:%M:%S')}] writing {corpus} ...", file=sys.stderr, flush=True)
        write_anisotropic(corpus, args.n, args.dim, args.seed)
    if not queries.exists():
        print(f"[{time.strftime('%H:%M:%S')}] writing {queries} ...", file=sys.stderr, flush=True)
        write_queries(queries, n_q, args.dim, args.shift, args.seed)
    print(f"[{time.strftime('%H:%M:%S')}] shift_report on {args.n:,} x {args.dim} against {n_q:,} queries ...",
          file=sys.stderr, flush=True)
    cmd = [sys.executable, __file__, "--child", str(corpus), str(queries), "--k", str(args.k)]
    cmd += ["--no-transforms"] if args.no_transforms else []
    cmd += ["--index", args.index] if args.index else []
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=HERE)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        result = json.loads(lines[-1][len("RESULT "):]) if lines else {
            "error": f"exit {done.returncode}: {' | '.join((done.stderr or 'no output').strip().splitlines()[-3:])}"}
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {args.timeout} s"}
    result.update(n_corpus=args.n, n_queries=n_q, dim=args.dim, k=args.k, shift=args.shift,
                  transforms=not args.no_transforms, index=args.index,
                  input_bytes=(args.n + n_q) * args.dim * 4)
    out = {"machine": machine_info("numpy", "torch", "faiss", "numba", "sklearn"), "result": result}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"shift_n{args.n}_d{args.dim}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    m, mib = out["machine"], 2**20
    lines = [f"# shift_report: {args.n:,} x {args.dim} corpus against {n_q:,} queries (memory-mapped float32)", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, torch "
             f"{m['torch']}, faiss {m['faiss']}, scikit-learn {m['sklearn']}. Queries: the corpus's population "
             f"moved by {args.shift:g} spreads along its second principal axis. shift_report defaults (k = "
             f"{args.k}, samples of 1,000 rows per set, 200 permutations), transforms "
             f"{'on' if not args.no_transforms else 'off'}, index {args.index or 'none'}.", ""]
    if "error" in result:
        lines.append(f"Failed: {result['error']}")
    else:
        lines += ["| seconds | peak RSS MiB | peak anonymous MiB | input MiB |", "|---|---|---|---|",
                  f"| {result['seconds']:.1f} | {result['peak_rss_bytes'] / mib:.0f} | "
                  f"{result['peak_anon_bytes'] / mib:.0f} | {result['input_bytes'] / mib:.0f} |", "",
                  "Parts (seconds): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items()), "",
                  "Values: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in result["values"].items())]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
