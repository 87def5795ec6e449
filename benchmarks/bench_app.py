"""The shareable app under load: memory per session, time to the first Overview for 1 and N users at
once, the kernel cap's busy page, and how long culling takes -- the real server (``embgeo serve``, as
a teacher starts it) driven by Debian's Chromium through Playwright, one browser context per user.

One server (token, ``--max-kernels N``, ``--idle-timeout``, ``--cull-interval 1``, no memory floor; run at
``nice 10`` so the browser, which stands for N users' own machines, is not starved by it), then:

1. idle baseline: the server's process tree (launcher, Voila server) resident memory and the
   machine's used memory (total - available), Chromium open with no page;
2. one user: a page opens; seconds from navigation to the Overview's six cards (its first numbers,
   sent by the kernel over the websocket); the kernel's RSS, USS (its own pages) and PSS (shared
   libraries split between processes); the page closes; seconds until the kernel is culled;
3. N users at once: N contexts navigate together; each one's time to its six cards; every kernel's
   RSS/USS/PSS once all are shown, and the kernels' summed RSS at its peak (sampled every 0.25 s);
   page N + 1 gets the "server busy" page (HTTP 503) and starts no kernel; all pages close; seconds
   until the last kernel is culled; the tree's and the machine's memory after it, against the baseline.

Every page is checked for error text (``div.embgeo-error``, tracebacks), widgets not shown, and uncaught
page errors (anywidget's 2 s set-up timeout on a starved page counted apart: :data:`ANYWIDGET_LATE_INIT`).
Results go to benchmarks/results/app_{sample}_u{N}.{json,md} with the machine and the date.

    python benchmarks/bench_app.py                                   # words sample, 1 and 8 users
    python benchmarks/bench_app.py --sample synthetic --users 8 --idle-timeout 5 --no-warm --out /tmp/b

:func:`unmet_criteria` checks a result against the load test's criteria; the suite's load test
(tests/widgets/test_load.py) runs :func:`run` on the synthetic sample with 8 users and asserts it empty.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from embgeo._server_process import free_port, listening_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MIB = 2**20
PAGE_ERROR_MARKERS = ("Traceback", "Voila Error", "There was an error when executing cell")
#: What ipywidgets writes in place of a widget it could not show.
UNRENDERED_MARKERS = ("Loading widget...", "Error displaying widget")
#: anywidget rejects a model's ``ready`` when its module and ``initialize`` take over a fixed 2 s (an
#: uncaught rejection; the view still renders once they finish). Only the page's own machine being
#: starved does that -- here 8 browsers share 2 cores with 8 kernels -- and the page's anywidgets at
#: first render (the upload button, the page-sync widget) take no message from the kernel, which such a
#: model would drop. So it is counted, not an error: the page must still show every widget and its Overview.
ANYWIDGET_LATE_INIT = "[anywidget] Failed to initialize model."


@contextlib.contextmanager
def app_server(*, sample: str | None, max_kernels: int, idle_timeout: int, warm: bool, log: Path,
               timeout: float = 600.0):
    """Yield (port, token, launcher process) for ``embgeo serve`` on a free loopback port; always torn down
    with every kernel (they share the launcher's new process group)."""
    port, token = free_port(), f"bench-{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))}
    if sample is not None:
        env["EMBGEO_APP_SAMPLE"] = sample
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text(token + "\n")
        # niced: in a room each browser runs on its user's own machine; here all N share the cores with
        # the server, and a starved page misses anywidget's fixed 2 s to set up its widgets
        # ("[anywidget] Failed to initialize model.", seen in 2 of 8 pages), a fault of this rig, not the app
        cmd = ["nice", "-n", "10", sys.executable, "-m", "embgeo", "serve", "--port", str(port), "--token-file", str(token_file),
               "--max-kernels", str(max_kernels), "--idle-timeout", str(idle_timeout), "--cull-interval", "1",
               "--memory-floor", "0", *([] if warm else ["--no-warm"])]
        with listening_server(cmd, port=port, log=log, env=env, cwd=REPO, timeout=timeout) as proc:
            yield port, token, proc


def live_kernels(port: int, token: str) -> int:
    """The server's own count (``GET /api/kernels``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", f"/api/kernels?token={token}")
        return int(json.loads(conn.getresponse().read())["kernels"])
    finally:
        conn.close()


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _is_kernel(p: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return any("ipykernel" in part for part in p.cmdline())
    return False


def kernel_processes(pid: int) -> list[psutil.Process]:
    return [p for p in _tree(pid) if _is_kernel(p)]


def server_rss_mib(pid: int) -> float:
    """Resident memory of the launcher and the Voila server (the kernels left out)."""
    total = 0
    for p in _tree(pid):
        if not _is_kernel(p):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total / MIB


def machine_used_mib() -> float:
    vm = psutil.virtual_memory()
    return (vm.total - vm.available) / MIB


def kernel_memory(pid: int) -> list[dict]:
    """RSS, USS and PSS (MiB) of each live kernel."""
    out = []
    for p in kernel_processes(pid):
        with contextlib.suppress(psutil.Error):
            full = p.memory_full_info()
            out.append({"rss_mib": round(full.rss / MIB, 1), "uss_mib": round(full.uss / MIB, 1),
                        "pss_mib": round(getattr(full, "pss", 0) / MIB, 1)})
    return out


class PeakSampler:
    """The kernels' summed RSS, sampled every ``step`` seconds on a thread; ``peak_mib`` is its maximum."""

    def __init__(self, pid: int, step: float = 0.25):
        self.pid, self.step, self.peak_mib = pid, step, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for p in kernel_processes(self.pid):
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak_mib = max(self.peak_mib, total / MIB)
            self._stop.wait(self.step)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def open_session(browser, url: str, timeout_s: float) -> dict:
    """One user: a fresh context navigates to the app; seconds until the Overview's six cards show."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    late_inits: list[str] = []

    def page_error(exc) -> None:
        (late_inits if ANYWIDGET_LATE_INIT in str(exc) else errors).append(f"page error: {exc}")

    page.on("pageerror", page_error)
    t0 = time.monotonic()
    response = None
    try:  # a session that never loads or never shows its numbers is a result, not a crash
        response = await page.goto(url, timeout=timeout_s * 1000)
        await page.wait_for_function("document.querySelectorAll('.embgeo-card').length >= 6",
                                     timeout=max(1.0, timeout_s - (time.monotonic() - t0)) * 1000)
    except Exception as exc:
        shot = REPO / "test-artifacts" / f"bench-app-session-{id(page)}.png"
        shot.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(shot), full_page=True)
        what = "no Overview" if response is not None else "the page did not finish loading"
        errors.append(f"{what} within {timeout_s:.0f} s ({type(exc).__name__}); screenshot {shot}")
    seconds = time.monotonic() - t0
    errors += [f"error text: {t}" for t in await page.locator("div.embgeo-error").all_inner_texts() if t.strip()]
    body = await page.content()
    errors += [f"page shows {m!r}" for m in PAGE_ERROR_MARKERS if m in body]
    text = await page.inner_text("body")
    errors += [f"page shows {m!r}" for m in UNRENDERED_MARKERS if m in text]
    if not await page.locator("button", has_text="Upload").count():  # an anywidget, the page's first
        errors.append("no upload button on the page")
    return {"context": context, "status": response.status if response else None, "first_overview_s": seconds,
            "errors": errors, "late_inits": len(late_inits)}


async def busy_page(browser, url: str) -> dict:
    """The page load one past the cap: its HTTP status and whether it says the server is busy."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        response = await page.goto(url, timeout=60_000)
        text = await page.inner_text("body")
        return {"status": response.status if response else None, "says_busy": "server busy" in text}
    finally:
        await context.close()


def wait_culled(port: int, token: str, timeout: float) -> float | None:
    """Seconds until no kernel lives (None: not within ``timeout``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if live_kernels(port, token) == 0:
            return round(time.monotonic() - t0, 1)
        time.sleep(0.25)
    return None


async def _phase(browser, pid: int, url: str, users: int, timeout_s: float) -> dict:
    with PeakSampler(pid) as sampler:
        sessions = await asyncio.gather(*(open_session(browser, url, timeout_s) for _ in range(users)))
        await asyncio.sleep(1.0)  # the last card's kernel work settles before memory is read
        memory = kernel_memory(pid)
    times = [s["first_overview_s"] for s in sessions]
    return {"users": users, "first_overview_s": [round(t, 2) for t in times],
            "first_overview_median_s": round(statistics.median(times), 2), "first_overview_max_s": round(max(times), 2),
            "http_status": [s["status"] for s in sessions], "kernels": memory,
            "kernel_rss_mean_mib": round(statistics.mean(m["rss_mib"] for m in memory), 1) if memory else None,
            "kernel_uss_mean_mib": round(statistics.mean(m["uss_mib"] for m in memory), 1) if memory else None,
            "kernel_pss_mean_mib": round(statistics.mean(m["pss_mib"] for m in memory), 1) if memory else None,
            "kernels_rss_peak_total_mib": round(sampler.peak_mib, 1),
            "errors": [e for s in sessions for e in s["errors"]], "late_widget_inits": sum(1 for s in sessions if s["late_inits"]),
            "_contexts": [s["context"] for s in sessions]}


async def _run(*, port: int, token: str, pid: int, users: int, idle_timeout: int, timeout_s: float,
               one_user: bool) -> dict:
    from playwright.async_api import async_playwright

    url = f"http://127.0.0.1:{port}/?token={token}"
    cull_bound = idle_timeout + 120  # the timeout, then the cull pass and a kernel's shutdown on a busy machine
    out: dict = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            await asyncio.sleep(2.0)
            out["baseline"] = {"server_rss_mib": round(server_rss_mib(pid), 1),
                               "machine_used_mib": round(machine_used_mib(), 1)}
            phases = ([1] if one_user else []) + [users]
            for n in phases:
                phase = await _phase(browser, pid, url, n, timeout_s)
                if n == users:
                    phase["next_page"] = await busy_page(browser, url)
                    phase["kernels_after_busy_page"] = live_kernels(port, token)
                for context in phase.pop("_contexts"):
                    await context.close()
                phase["culled_after_s"] = await asyncio.to_thread(wait_culled, port, token, cull_bound)
                await asyncio.sleep(2.0)  # the culled kernels' processes exit and the server frees their buffers
                phase["kernel_processes_after"] = len(kernel_processes(pid))
                phase["after"] = {"server_rss_mib": round(server_rss_mib(pid), 1),
                                  "machine_used_mib": round(machine_used_mib(), 1)}
                out[f"users_{n}"] = phase
        finally:
            await browser.close()
    return out


def run(*, sample: str | None, users: int = 8, idle_timeout: int = 10, warm: bool = True,
        timeout_s: float = 900.0, one_user: bool = True, log: Path | None = None) -> dict:
    """Start the server with ``--max-kernels users`` and measure the phases of the module docstring."""
    if not CHROMIUM.exists():
        raise RuntimeError("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    log = log or REPO / "test-artifacts" / f"bench-app-{os.getpid()}.log"
    with app_server(sample=sample, max_kernels=users, idle_timeout=idle_timeout, warm=warm, log=log) as (port, token, proc):
        result = asyncio.run(_run(port=port, token=token, pid=proc.pid, users=users, idle_timeout=idle_timeout,
                                  timeout_s=timeout_s, one_user=one_user))
    result["settings"] = {"sample": sample or "words (the app's default)", "users": users, "max_kernels": users,
                          "idle_timeout_s": idle_timeout, "cull_interval_s": 1, "warm_up": warm}
    return result


def unmet_criteria(result: dict) -> list[str]:
    """The load test's criteria (issue 16) that ``result`` misses, each as a line; empty when all hold.

    Every session showed its Overview without error; the page one past the cap got the busy page and
    started no kernel; after the pages closed, every kernel was culled within the idle timeout + 60 s and
    no kernel process was left; the machine's used memory came back to within 10 % of the sessions' peak
    above the baseline; the server kept less than a quarter of one session's memory (USS).
    """
    s, base = result["settings"], result["baseline"]
    p = result[f"users_{s['users']}"]
    unmet = [f"session error: {e}" for e in p["errors"]]
    if p["http_status"] != [200] * s["users"]:
        unmet.append(f"page status {p['http_status']}")
    if p["next_page"] != {"status": 503, "says_busy": True} or p["kernels_after_busy_page"] != s["users"]:
        unmet.append(f"one past the cap: {p['next_page']}, {p['kernels_after_busy_page']} kernels alive")
    if p["culled_after_s"] is None or p["culled_after_s"] > s["idle_timeout_s"] + 60:
        unmet.append(f"culled after {p['culled_after_s']} s with --idle-timeout {s['idle_timeout_s']}")
    if p["kernel_processes_after"]:
        unmet.append(f"{p['kernel_processes_after']} kernel processes left")
    back = p["after"]["machine_used_mib"] - base["machine_used_mib"]
    if back > 0.10 * p["kernels_rss_peak_total_mib"]:
        unmet.append(f"machine memory {back:.0f} MiB above the baseline of {p['kernels_rss_peak_total_mib']:.0f} MiB held")
    kept = p["after"]["server_rss_mib"] - base["server_rss_mib"]
    if p["kernels"] and kept >= 0.25 * min(k["uss_mib"] for k in p["kernels"]):
        unmet.append(f"the server kept {kept:.0f} MiB")
    return unmet


def _markdown(result: dict) -> str:
    s, base = result["settings"], result["baseline"]
    m = result["machine"]
    lines = [f"# The app under load: {s['sample']}, 1 and {s['users']} users", "",
             f"{m['date_utc']}, {m['cpu_model']}, {m['usable_cores']} cores; `embgeo serve --max-kernels {s['users']} "
             f"--idle-timeout {s['idle_timeout_s']} --cull-interval 1`, warm-up {'on' if s['warm_up'] else 'off'}; "
             "one Chromium context per user.", "",
             f"Idle server: {base['server_rss_mib']:.0f} MiB RSS (launcher + Voila server); machine used "
             f"{base['machine_used_mib']:.0f} MiB with Chromium open.", "",
             "| users | first Overview, median (max) s | kernel RSS / USS / PSS, mean MiB | kernels' peak RSS, total MiB "
             "| culled after s | server RSS after MiB | machine used after MiB | errors |", "|---|---|---|---|---|---|---|---|"]
    for key in (k for k in result if k.startswith("users_")):
        p = result[key]
        lines.append(f"| {p['users']} | {p['first_overview_median_s']:.1f} ({p['first_overview_max_s']:.1f}) | "
                     f"{p['kernel_rss_mean_mib']:.0f} / {p['kernel_uss_mean_mib']:.0f} / {p['kernel_pss_mean_mib']:.0f} | "
                     f"{p['kernels_rss_peak_total_mib']:.0f} | {p['culled_after_s']} | {p['after']['server_rss_mib']:.0f} | "
                     f"{p['after']['machine_used_mib']:.0f} | {len(p['errors'])} |")
    last = result[f"users_{s['users']}"]
    back = last["after"]["machine_used_mib"] - base["machine_used_mib"]
    lines += ["", f"After the {s['users']} pages closed: {last['kernel_processes_after']} kernel processes left; the machine "
              f"used {back:.0f} MiB more than at the baseline, against {last['kernels_rss_peak_total_mib']:.0f} MiB the "
              f"kernels held at their peak; the server kept {last['after']['server_rss_mib'] - base['server_rss_mib']:.0f} MiB.",
              "", "Load-test criteria (issue 16): " + ("all met." if not unmet_criteria(result) else
                                                       "NOT met: " + "; ".join(unmet_criteria(result)) + "."),
              "", f"Page {s['users'] + 1} (one past the cap): HTTP {last['next_page']['status']}, "
              f"{'says' if last['next_page']['says_busy'] else 'does NOT say'} \"server busy\"; "
              f"kernels alive then: {last['kernels_after_busy_page']}.", "",
              f"Pages where anywidget timed out a widget's set-up (2 s, then it rendered anyway; see "
              f"ANYWIDGET_LATE_INIT): {last.get('late_widget_inits', 0)} of {s['users']}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default=None, help="the app's sample (EMBGEO_APP_SAMPLE; default: words)")
    ap.add_argument("--users", type=int, default=8, help="concurrent users, also --max-kernels (8)")
    ap.add_argument("--idle-timeout", type=int, default=10, help="the server's --idle-timeout in seconds (10)")
    ap.add_argument("--no-warm", action="store_true", help="skip the server's numba warm-up")
    ap.add_argument("--session-timeout", type=float, default=900.0, help="seconds a user waits for the Overview (900)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = run(sample=args.sample, users=args.users, idle_timeout=args.idle_timeout, warm=not args.no_warm,
                 timeout_s=args.session_timeout)
    result["machine"] = machine_info("numpy", "voila", "ipywidgets")
    name = f"app_{(args.sample or 'words').split()[0]}_u{args.users}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
