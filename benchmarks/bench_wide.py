"""Wide data (fewer rows than dimensions, as LLM embeddings are): time and memory of the reports.

For each (n, d), Gaussian rows: ``isotropy_report`` and, where n allows a k-NN graph, ``geometry_report``;
wall time and the peak of Python allocations (tracemalloc, which sees NumPy's buffers) of each. The
goal of issue 15: memory O(n^2 + n d) and time O(n^2 d), never the d x d covariance (5 x 16,384 as
float64 is 2 GiB). Writes benchmarks/results/wide.{json,md} with the machine and the date.

    python benchmarks/bench_wide.py                       # the default cases
    python benchmarks/bench_wide.py --cases 5x4096 300x4096
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from embgeo.analysis import geometry_report, isotropy_report  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CASES = ("5x4096", "5x16384", "50x8192", "300x4096")


def measure(fn) -> tuple[float, float]:
    """(seconds, peak MiB of Python allocations) of one call."""
    tracemalloc.start()
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def run(n: int, d: int) -> dict:
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    geometry_report(np.random.default_rng(1).normal(size=(40, 8)), k=3, sample=20)  # JIT and threads warmed
    row = {"n": n, "dim": d, "input_mib": x.nbytes / 2**20}
    row["isotropy_s"], row["isotropy_peak_mib"] = measure(lambda: isotropy_report(x))
    if n >= 60:  # k = 5 and 2k + 2 points at least, with room for a query sample
        row["report_s"], row["report_peak_mib"] = measure(lambda: geometry_report(x, k=5, sample=100))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="NxD, e.g. 5x4096")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = []
    for case in args.cases:
        n, d = (int(v) for v in case.lower().split("x"))
        rows.append(run(n, d))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    out = {"machine": machine_info("numpy", "torch"), "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wide.json").write_text(json.dumps(out, indent=2) + "\n")
    m = out["machine"]
    lines = ["# Wide data (n < d): isotropy_report and geometry_report", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, "
             f"torch {m['torch']}. Gaussian float32 rows; peak = tracemalloc's peak of Python allocations "
             "(NumPy buffers included) during the call; geometry_report with k=5, sample=100.", "",
             "| n | d | input MiB | isotropy_report s | peak MiB | geometry_report s | peak MiB |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        rep = (f"{r['report_s']:.2f} | {r['report_peak_mib']:.0f}" if "report_s" in r else "- | -")
        lines.append(f"| {r['n']:,} | {r['dim']:,} | {r['input_mib']:.1f} | {r['isotropy_s']:.3f} | "
                     f"{r['isotropy_peak_mib']:.1f} | {rep} |")
    (args.out / "wide.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
