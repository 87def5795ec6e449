"""Serve the embgeo dashboard (notebooks/apps/dashboard.ipynb) with Voila on the loopback interface.

Usage::

    python scripts/serve_app.py [--port 8866] [--no-warm]

Before starting Voila it compiles the numba functions once (a tiny UMAP fit and geometry report) with ``NUMBA_CACHE_DIR``
set to ``.cache/numba`` in the repository, so the kernels Voila starts load the compiled code from
that cache instead of stalling for tens of seconds on the first UMAP projection.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "notebooks" / "apps" / "dashboard.ipynb"
NUMBA_CACHE = REPO / ".cache" / "numba"


def warm_numba() -> float:
    """Compile (and cache) numba's kernels: a tiny UMAP fit and a tiny geometry report (k-NN folds,
    distance refinement, the shared sample search, cosine vs dot); returns seconds."""
    import numpy as np

    from embgeo.analysis import geometry_report
    from embgeo.analysis.neighbors import warm_up
    from embgeo.analysis import project

    t0 = time.perf_counter()
    warm_up()
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    geometry_report(x, k=5, sample=50)
    project(x, "umap", 2, metric="cosine")
    return time.perf_counter() - t0


def voila_command(port: int) -> list[str]:
    return [sys.executable, "-m", "voila", str(APP), f"--port={port}", "--Voila.ip=127.0.0.1",
            "--no-browser", "--strip_sources=True", "--show_tracebacks=False"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    parser.add_argument("--no-warm", action="store_true", help="skip the numba warm-up fit")
    args = parser.parse_args(argv)

    NUMBA_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(NUMBA_CACHE)  # inherited by Voila and its kernels
    if not args.no_warm:
        print(f"warming numba (cache in {NUMBA_CACHE}) ...", flush=True)
        print(f"  done in {warm_numba():.1f} s", flush=True)
    print(f"embgeo dashboard: http://127.0.0.1:{args.port}/  (Ctrl-C to stop)", flush=True)
    proc = subprocess.Popen(voila_command(args.port), cwd=REPO)
    # SIGTERM (e.g. from make or a supervisor) stops Voila too, as Ctrl-C does, so no server is orphaned
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()  # Voila shuts its kernels down on SIGTERM
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
