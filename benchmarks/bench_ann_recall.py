"""Does the approximate table's reported recall tell the truth? Reported against full recall, per data set.

    python benchmarks/bench_ann_recall.py [--out DIR]

For each set and metric it runs ``geometry_report(..., exact=False)`` (whose recall is measured on a
sample of the report's query sample, see ``analysis/neighbors/approximate.py``), then searches the whole table exactly
and scores the approximate table against it. The sets: the two bundled MiniLM samples (words,
sentences), a 50,000-point mixture of 100 Gaussians in 256 dimensions, and 30,000 points near a
5-dimensional subspace of 128 dimensions (seeded). Results go to
``benchmarks/results/ann_recall.{json,md}`` with the report's time and the engine's settings.
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


def _sets() -> dict[str, np.ndarray]:
    from embgeo.analysis import list_samples, load_sample

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(100, 256)).astype(np.float32) * 3
    mixture = centres[rng.integers(0, 100, 50_000)] + rng.normal(size=(50_000, 256)).astype(np.float32)
    basis = np.linalg.qr(rng.normal(size=(128, 5)))[0].T.astype(np.float32)
    subspace = (rng.normal(size=(30_000, 5)).astype(np.float32) @ basis
                + 0.01 * rng.normal(size=(30_000, 128)).astype(np.float32) + 2 * basis[0])
    sets = {name: load_sample(name).vectors for name in list_samples()}
    sets["mixture 50k x 256"] = mixture.astype(np.float32)
    sets["5-d subspace 30k x 128"] = subspace.astype(np.float32)
    return sets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", nargs="+", default=["cosine", "euclidean", "dot"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from embgeo.analysis import EmbeddingSet, exact_knn, geometry_report, recall_at_k

    geometry_report(np.random.default_rng(0).normal(size=(3000, 32)), exact=False, progress=False)  # warm-up
    rows = []
    for name, x in _sets().items():
        for metric in args.metrics:
            es = EmbeddingSet(x)
            t0 = time.perf_counter()
            report = geometry_report(es, metric=metric, exact=False, progress=False)
            seconds = time.perf_counter() - t0
            table = es.neighbors(report.table_k, metric=metric, exact=False)
            truth = exact_knn(x, k=report.table_k, metric=metric, progress=False).indices
            row = {"data": name, "n": int(x.shape[0]), "dim": int(x.shape[1]), "metric": metric,
                   "report_seconds": seconds, "reported_recall": table.recall, "recall_sample": table.recall_sample,
                   "full_recall": recall_at_k(table.indices, truth), "engine": table.backend}
            rows.append(row)
            print(json.dumps(row), flush=True)

    machine = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu_cores": os.cpu_count(),
               "processor": platform.processor() or platform.machine(), "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ann_recall.json").write_text(json.dumps({"machine": machine, "results": rows}, indent=2))
    lines = ["# Approximate table: reported recall@k against full recall", "",
             f"{machine['date']}; {machine['cpu_cores']} cores. k = 32 (the report's table).", "",
             "| data | n x d | metric | report s | reported (sample) | full | engine |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['n']:,} x {r['dim']} | {r['metric']} | {r['report_seconds']:.1f} | "
                     f"{r['reported_recall']:.3f} ({r['recall_sample']}) | {r['full_recall']:.3f} | {r['engine']} |")
    (args.out / "ann_recall.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'ann_recall.json'} and {args.out / 'ann_recall.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
