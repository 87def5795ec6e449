"""The Voila app: the served page renders the dashboard (smoke test) and works in a real browser."""

import contextlib
import os
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from embgeo._server_process import free_port, listening_server

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "notebooks" / "apps" / "dashboard.ipynb"


@contextlib.contextmanager
def voila_server(env_extra: dict | None = None, timeout: float = 120.0):
    """Yield (url, log_path) for a Voila server on a free loopback port; always torn down."""
    port = free_port()
    log = REPO / "test-artifacts" / f"voila-{port}.log"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(REPO / ".cache" / "numba"), **(env_extra or {})}
    cmd = [sys.executable, "-m", "voila", str(APP), f"--port={port}", "--Voila.ip=127.0.0.1", "--no-browser",
           "--strip_sources=True", "--show_tracebacks=False"]
    with listening_server(cmd, port=port, log=log, env=env, cwd=REPO, timeout=timeout):
        yield f"http://127.0.0.1:{port}/", log  # the page itself is fetched (and waited for) by the test


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ERROR_MARKERS = ("Traceback", "application/vnd.jupyter.stderr", "EmbeddingInputError", "Voila Error",
                 "There was an error when executing cell")


@pytest.mark.slow
def test_voila_serves_the_dashboard_on_the_words_sample():
    with voila_server() as (url, log):
        deadline = time.monotonic() + 180
        while True:
            with urllib.request.urlopen(url, timeout=180) as resp:
                page = resp.read().decode("utf-8", "replace")
                assert resp.status == 200
            if "application/vnd.jupyter.widget-view+json" in page or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert "application/vnd.jupyter.widget-view+json" in page, "the app cell did not render a widget"
    for marker in ERROR_MARKERS:
        assert marker not in page, f"error output in the page: {marker}"
    assert "embgeo dashboard" in page
    assert "app = DashboardApp(initial=" not in page  # --strip_sources hides the code
    server_log = log.read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-3000:]


#: Placeholders a panel shows before or while it computes: a settled tab shows none of them.
_PENDING = ("Open this tab to compute it", "Computing", "Re-scoring", "Compressing and searching", "Building HNSW",
            "Preparing the report")

_STATE_JS = """(pending) => {
  const shown = el => el.offsetParent !== null;
  const busy = [...document.querySelectorAll('button')].some(b => shown(b) && b.textContent.trim() === 'Cancel');
  const waiting = [...document.querySelectorAll('.widget-html, .widget-label')]
      .filter(shown).map(h => h.textContent).filter(t => pending.some(p => t.includes(p)));
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(shown);
  const empty = plots.filter(p => !(p.data || []).some(t => ['x', 'y', 'z'].some(k => t[k] && t[k].length > 0)));
  // a figure wider than its slot is cut off (plotly's FigureWidget does not follow its container)
  const clipped = plots.filter(p => p._fullLayout && p._fullLayout.width > p.parentElement.getBoundingClientRect().width + 1)
      .map(p => `${p._fullLayout.width} px in ${Math.round(p.parentElement.getBoundingClientRect().width)}`);
  const errors = [...document.querySelectorAll('div.embgeo-error')].map(e => e.textContent.trim()).filter(t => t);
  return {busy, waiting, plots: plots.length, empty: empty.length, clipped, errors};
}"""


def settle(page, what: str, *, plots: bool = False, timeout: float = 300.0) -> dict:
    """Wait until no job runs and the open tab shows no placeholder (and, with ``plots``, shows a plot),
    for 1.5 s on end; its state. (A button's job may not have started when this is first asked.)"""
    deadline, calm = time.monotonic() + timeout, 0
    while True:
        state = page.evaluate(_STATE_JS, list(_PENDING))
        calm = 0 if (state["busy"] or state["waiting"] or (plots and not state["plots"])) else calm + 1
        if calm >= 3 or state["errors"]:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still busy after {timeout:.0f} s: {state}")
        time.sleep(0.5)


def check_tab(page, name: str, shots: Path, *, plots: bool) -> dict:
    state = settle(page, name, plots=plots)
    page.screenshot(path=str(shots / f"walk_{name.lower().replace(' ', '_')}.png"), full_page=True)
    assert not state["errors"], f"{name}: {state['errors']}"
    assert state["empty"] == 0, f"{name}: {state['empty']} of {state['plots']} plots have no data"
    assert not state["clipped"], f"{name}: figures wider than their slot: {state['clipped']}"
    if plots:
        assert state["plots"] > 0, f"{name}: no plot"
    return state


@pytest.mark.browser
@pytest.mark.slow
def test_browser_walks_every_tab_and_main_control_then_exports_the_report():
    """The real server on the sentences sample, in Chromium: every tab opened in turn and every main control
    used (colour, search box, transform, index sweep, the Retrieval buttons, Compare); after each, no
    error text and no plot without data. Then the HTML report downloads and opens offline."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    from embgeo.widgets._options import TABS

    shots = REPO / "test-artifacts"
    shots.mkdir(exist_ok=True)
    with voila_server({"EMBGEO_APP_SAMPLE": "sentences"}) as (url, log), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})  # a laptop's notebook width
            page_errors = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(url, timeout=180_000)
            page.wait_for_selector(".embgeo-card", timeout=240_000)
            assert page.locator(".embgeo-card").count() == 6

            def tab(name):
                page.locator(".lm-TabBar-tabLabel", has_text=name).first.click()

            def press(name):
                page.get_by_role("button", name=name).click()

            opened = []
            for name in TABS:
                tab(name)
                check_tab(page, name, shots, plots=name in ("Projection", "Spectrum", "Intrinsic dimension", "Hubness"))
                opened.append(name)
                if name == "Projection":
                    assert page.locator(".js-plotly-plot .colorbar").count() == 0
                    colour = page.locator(".widget-dropdown", has_text="colour by").locator("select")
                    colour.select_option("norm")  # a colour bar appears on the plot
                    page.wait_for_selector(".js-plotly-plot .colorbar", timeout=60_000)
                    colour.select_option("label")  # 196 modules: the 11 commonest coloured, the rest one grey
                    page.wait_for_selector(".js-plotly-plot .colorbar >> text=/^other \\(185 more\\)$/", timeout=60_000)
                    # the search box: a new sentence, embedded offline, listed with its neighbours
                    page.get_by_placeholder("find a word or a sentence").fill("how do I sort a list in python")
                    press("Find")
                    page.wait_for_selector("text=embedded with", timeout=120_000)
                    check_tab(page, "Projection search", shots, plots=True)
                    assert page.locator(".embgeo-nn tr").count() >= 11  # the header and k = 10 neighbours
                elif name == "Transforms":
                    press("Apply")
                    check_tab(page, "Transforms applied", shots, plots=True)
                elif name == "Index health":
                    press("Run")
                    page.wait_for_selector("table.embgeo-index", timeout=300_000)
                    state = check_tab(page, "Index health run", shots, plots=True)
                    assert state["plots"] >= 3  # recall against speed and memory, and by difficulty
                    assert page.locator("table.embgeo-index").count() == 1
                elif name == "Retrieval":
                    assert page.locator("table.embgeo-concentration").count() == 1
                    for button, table in (("Reduce hubness", "embgeo-reduction"),
                                          ("Compression sweep", "embgeo-compression"),
                                          ("Index-size scaling", "embgeo-scaling")):
                        press(button)
                        page.wait_for_selector(f"table.{table}", timeout=300_000)
                        check_tab(page, f"Retrieval {button}", shots, plots=button == "Index-size scaling")
                        assert page.locator(f"table.{table}").count() == 1, button
                elif name == "Compare":
                    press("Compare")
                    page.wait_for_selector("text=comparison: done", timeout=300_000)
                    check_tab(page, "Compare run", shots, plots=False)
            assert opened == list(TABS)
            page.screenshot(path=str(shots / "dashboard_walk_end.png"), full_page=True)

            # the report downloads from the Overview and opens offline (plotly inline, no network)
            tab("Overview")
            press("Export the report")
            with page.expect_download(timeout=240_000) as download:
                page.locator("a.embgeo-download", has_text="report.html").click()
            saved = shots / "exported_report.html"
            download.value.save_as(str(saved))
            offline = browser.new_context(offline=True)
            report = offline.new_page()
            report.goto(saved.as_uri())
            report.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            assert "embgeo geometry report: sentences" in report.title()
            offline.close()
            assert page.locator("div.embgeo-error").count() == 0, page.locator("div.embgeo-error").all_inner_texts()
            assert not page_errors, page_errors
        finally:
            browser.close()
    assert "Traceback" not in log.read_text(errors="replace")


def test_serve_script_runs_embgeo_serve_on_loopback_without_a_token(monkeypatch):
    """make demo: scripts/serve_app.py is ``embgeo serve`` with its one-user defaults."""
    import importlib.util

    from embgeo import _commands_serve, cli

    spec = importlib.util.spec_from_file_location("serve_app", REPO / "scripts" / "serve_app.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv) or 0)
    assert serve.main(["--port", "9123", "--no-warm"]) == 0
    assert seen == [["serve", "--no-token", "--port", "9123", "--no-warm"]]
    args = cli.build_parser().parse_args(seen[0])
    assert args.host == "127.0.0.1" and _commands_serve.resolve_token(args) is None
    cmd = _commands_serve.server_command(args, APP)
    assert cmd[:4] == [sys.executable, "-m", "embgeo._voila_server", str(APP)]
    for flag in ("--port=9123", "--Voila.ip=127.0.0.1", "--no-browser", "--strip_sources=True",
                 "--show_tracebacks=False"):
        assert flag in cmd
    assert _commands_serve.APP_NOTEBOOK == APP
    assert _commands_serve.numba_cache_dir() == Path(os.environ.get("NUMBA_CACHE_DIR") or REPO / ".cache" / "numba")
