"""layer_geometry on real sentences: seconds and peak memory of the one forward pass and of the per-layer
statistics, for all 7 hidden states of the bundled all-MiniLM-L6-v2.

The texts are the first sentences of the bundled ``sentences`` sample (Python docstrings; a seeded
subsample of ``--n``), mean-pooled, k = 10, on the CPU unless ``--device`` says otherwise. One warm-up
call on 32 texts loads the model and compiles the kernels first (timed apart). The measured call reports,
through its progress callback, when the forward pass ends and the statistics begin, so one run gives both
phases. Memory: tracemalloc's peak (Python and NumPy allocations, the stacked states and the neighbour
tables) and the process's peak resident set (``ru_maxrss``, which also sees torch's buffers and the
model), before and after the call. Writes benchmarks/results/layers_n{N}.{json,md} with the machine.

    python benchmarks/bench_layers.py              # 5,000 sentences x 7 layers
    python benchmarks/bench_layers.py --n 1000 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from embgeo.analysis import layer_geometry, load_sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(n: int, batch_size: int, device: str | None, note: str) -> dict:
    sample = load_sample("sentences")
    texts = sample.metadata["text"].tolist()
    if n > len(texts):
        raise SystemExit(f"--n {n} is more than the sample's {len(texts):,} sentences")
    rows = np.sort(np.random.default_rng(0).choice(len(texts), size=n, replace=False))
    texts = [texts[i] for i in rows]

    t = time.perf_counter()
    layer_geometry("all-MiniLM-L6-v2", texts[:32], k=5, device=device, progress=False)
    warm = time.perf_counter() - t

    marks = {}

    def progress(done, total, description):
        if description.startswith("geometry") and "stats_start" not in marks:
            marks["stats_start"] = time.perf_counter()

    rss_before = peak_rss_mib()
    tracemalloc.start()
    t = time.perf_counter()
    g = layer_geometry("all-MiniLM-L6-v2", texts, k=10, batch_size=batch_size, device=device, progress=progress)
    total = time.perf_counter() - t
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    import torch

    return {
        "n_texts": n, "layers": len(g.layers), "dim": g.dim, "k": 10, "batch_size": batch_size, "device": g.device,
        "torch_threads": torch.get_num_threads(), "n_truncated": g.n_truncated,
        "warm_up_s": warm, "total_s": total, "forward_s": marks["stats_start"] - t,
        "statistics_s": t + total - marks["stats_start"],
        "tracemalloc_peak_mib": traced_peak, "rss_peak_before_mib": rss_before, "rss_peak_after_mib": peak_rss_mib(),
        "states_mib": g.n * g.dim * 4 * len(g.layers) / 2**20,
        "curves": {key: np.round(value, 4).tolist() for key, value in g.curves().items()},
        "note": note,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="sentences (default: 5000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--note", default="", help="a word about the machine's state (e.g. shared, busy)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    row = run(args.n, args.batch_size, args.device, args.note)
    print(json.dumps(row), file=sys.stderr, flush=True)
    out = {"machine": machine_info("numpy", "torch", "transformers"), "results": [row]}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"layers_n{args.n}"
    (args.out / f"{stem}.json").write_text(json.dumps(out, indent=2) + "\n")
    m, r = out["machine"], row
    lines = [f"# layer_geometry: {r['n_texts']:,} sentences x {r['layers']} layers of all-MiniLM-L6-v2", "",
             f"{m['date_utc']}; {m['cpu_model']}; {m['usable_cores']} usable cores; numpy {m['numpy']}, "
             f"torch {m['torch']} ({r['torch_threads']} threads, device {r['device']}), transformers "
             f"{m['transformers']}. Mean pooling, k = 10, batch {r['batch_size']}; bundled docstring sentences "
             f"(seeded subsample); {r['n_truncated']} truncated.", ""]
    if r["note"]:
        lines += [f"Note: {r['note']}", ""]
    lines += ["| phase | seconds |", "|---|---|",
              f"| warm-up (model load, kernels; 32 texts) | {r['warm_up_s']:.1f} |",
              f"| forward pass, all layers pooled | {r['forward_s']:.1f} |",
              f"| per-layer statistics (7 neighbour tables, isotropy, TwoNN, GRIDE, hubness, overlap) | "
              f"{r['statistics_s']:.1f} |",
              f"| total of the measured call | {r['total_s']:.1f} |", "",
              f"Memory: tracemalloc peak {r['tracemalloc_peak_mib']:.0f} MiB (the stacked states are "
              f"{r['states_mib']:.0f} MiB); process peak RSS {r['rss_peak_before_mib']:.0f} MiB before the call "
              f"(model loaded), {r['rss_peak_after_mib']:.0f} MiB after.", ""]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
