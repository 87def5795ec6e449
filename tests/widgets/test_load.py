"""The bounded load test of issue 16, on loopback: 8 sessions at once on the real server.

It runs the app benchmark's own driver (``benchmarks/bench_app.py``, one home for it) on the small
synthetic sample, without the one-user phase: 8 Chromium contexts open the page together and each must
show its Overview's six cards without error text; the 9th page gets the "server busy" page and starts
no kernel; after the pages close every kernel is culled within the idle timeout (+ 60 s) and none is
left; the machine's memory comes back to within 10 % of what the sessions held; the server keeps less
than a quarter of one session. (Before the page re-sent its widget states once built -- see
widgets/_page_sync.py -- 1-2 of the 8 pages stalled at a stage of the Overview in 3 runs of 4.)
"""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench_app():
    spec = importlib.util.spec_from_file_location("bench_app", REPO / "benchmarks" / "bench_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
@pytest.mark.slow
def test_eight_sessions_at_once_show_their_overview_then_are_culled_and_memory_returns():
    bench = _bench_app()
    if not bench.CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    log = REPO / "test-artifacts" / "load-test-server.log"
    result = bench.run(sample="synthetic", users=8, idle_timeout=10, warm=False, one_user=False, timeout_s=400, log=log)
    # on failure, the server's log too: CI keeps no files
    assert bench.unmet_criteria(result) == [], bench._markdown(result) + "\n\nserver log (end):\n" + log.read_text(
        errors="replace")[-6000:]
