"""The app's "connect" option and Index health's live-index panel, on real LanceDB and Chroma collections.

Each collection is written in ``tmp_path`` with the database's own client (as in
tests/analysis/io/test_databases.py). The app opens a URI only under an allowlisted prefix: the
dashboard then switches to the collection; a URI outside the allowlist, a ``../`` escape, a symbolic link
out of the folder, another scheme and a bad scheme are refused with one line and leave the dashboard as it
was. ``embgeo serve --allow-uri`` is checked through the CLI's main() up to the ``exec`` of the server,
whose environment every kernel inherits.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import socket

import numpy as np
import pyarrow as pa
import pytest

from embgeo import _commands_serve as serve
from embgeo import cli
from embgeo.analysis import Cancelled, EmbeddingInputError
from embgeo.analysis import io as eio
from embgeo.widgets import DashboardApp
from embgeo.widgets._connect import ALLOW_ENV, allow_uris_from_env
from embgeo.widgets._html import format_number
from embgeo.widgets import app as app_module
from embgeo.widgets.app import SYNTHETIC

N, D = 150, 16
START = 40  # rows of the set the app opens first (a small one: the tests are about what comes after)


@pytest.fixture(autouse=True)
def small_start(monkeypatch):
    from embgeo.analysis import EmbeddingSet

    x = np.random.default_rng(1).normal(size=(START, 4)).astype(np.float32)
    monkeypatch.setattr(app_module, "load_choice", lambda name: EmbeddingSet(x, name="start"))


def _needs(module: str, extra: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install 'embgeo[{extra}]')")


@pytest.fixture(scope="module")
def rows():
    """N clustered rows (so the Overview has structure to show), with ids and texts."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, D)) * 4
    x = (centres[np.arange(N) % 5] + rng.normal(size=(N, D))).astype(np.float32)
    return x, [f"s{i:03d}" for i in range(N)], [f"text {i}" for i in range(N)]


def make(db: str, root, name: str, rows) -> str:
    x, ids, text = rows
    root.mkdir(parents=True, exist_ok=True)
    if db == "lancedb":
        import lancedb

        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1])
        lancedb.connect(str(root)).create_table(name, data=pa.table({"id": ids, "vector": vec, "text": text}))
        return f"lancedb://{root}/{name}"
    import chromadb

    col = chromadb.PersistentClient(path=str(root)).get_or_create_collection(name)
    col.add(ids=ids, embeddings=x, documents=text)
    return f"chroma://{root}/{name}"


def _one_line(value: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", "", value)).strip()
    assert text and "\n" not in text and "Traceback" not in text, value
    return text


@pytest.mark.parametrize("db", ["lancedb", "chroma"])
def test_an_allowlisted_uri_connects_and_the_dashboard_switches_to_it(tmp_path, rows, db):
    _needs({"lancedb": "lancedb", "chroma": "chromadb"}[db], db)
    uri = make(db, tmp_path / "dbs", "docs", rows)
    app = DashboardApp(SYNTHETIC, background=False, allow_uris=[f"{db}://{tmp_path / 'dbs'}"])
    assert not app.connect_bar.field.disabled and app.dashboard.controller.data.n == START
    # a "../" that stays inside the allowed folder is fine: the check is on the resolved path
    app.open_uri(f"{db}://{tmp_path}/dbs/sub/../docs")
    data = app.dashboard.controller.data
    assert data.n == N and data.dim == D and data.source == uri
    order = np.argsort(np.asarray(data.metadata["id"]))
    np.testing.assert_array_equal(data.vectors[order], rows[0])
    overview = app.dashboard.panels["Overview"].children[0].value
    assert overview.count("embgeo-card ") == 6 and app.dashboard.error.value == ""  # the numbers appear
    bar = app.connect_bar
    assert bar.message.value == "" and bar.progress.value == 100 and bar.status.value.endswith(": done")
    assert app.dashboard.live_box.layout.display is None  # Index health offers the live panel


def test_uris_outside_the_allowlist_escapes_and_bad_schemes_are_refused_with_one_line(tmp_path, rows):
    _needs("lancedb", "lancedb")
    make("lancedb", tmp_path / "lance", "docs", rows)
    make("lancedb", tmp_path / "secret", "docs", rows)
    os.symlink(tmp_path / "secret", tmp_path / "lance" / "link")
    os.symlink(tmp_path / "secret" / "docs.lance", tmp_path / "lance" / "linked.lance")
    app = DashboardApp(SYNTHETIC, background=False, allow_uris=[f"lancedb://{tmp_path / 'lance'}"])
    refused = {
        f"lancedb://{tmp_path}/secret/docs": "is not allowed here",
        f"lancedb://{tmp_path}/lance/../secret/docs": "is not allowed here",  # a ../ escape
        f"lancedb://{tmp_path}/lance/link/docs": "is not allowed here",  # a link out of the folder
        f"lancedb://{tmp_path}/lance/linked": "is not allowed here",  # a table that is a link out of it
        f"lancedb://{tmp_path}/lancelot/docs": "is not allowed here",  # a prefix of the name is not the folder
        f"chroma://{tmp_path}/lance/docs": "is not allowed here",  # a prefix allows its own scheme only
        f"mongodb://{tmp_path}/lance/docs": "unknown URI scheme 'mongodb://'",
        str(tmp_path / "lance" / "docs.lance"): "is not a database URI",
        "": "type a database URI first",
    }
    for uri, why in refused.items():
        app.open_uri(uri)
        line = _one_line(app.connect_bar.message.value)
        assert why in line and line.startswith("Input problem:"), (uri, line)
        assert app.dashboard.controller.data.n == START  # nothing was opened
    app.open_uri(f"lancedb://{tmp_path}/secret/docs")
    assert _one_line(app.connect_bar.message.value) == (
        f"Input problem: lancedb://{tmp_path}/secret/docs is not allowed here; this server opens only URIs under "
        f"lancedb://{tmp_path / 'lance'}")  # the URI as typed and the prefixes, no resolved path
    # inside the folder but no such table: the reader's own message, naming the URI as typed
    app.open_uri(f"lancedb://{tmp_path}/lance/missing")
    line = _one_line(app.connect_bar.message.value)
    assert "missing" in line and app.dashboard.controller.data.n == START
    app.open_uri(f"lancedb://{tmp_path}/lance/nowhere/docs")
    assert "no such database folder" in _one_line(app.connect_bar.message.value)
    assert not (tmp_path / "lance" / "nowhere").exists()  # nothing was created
    app.open_uri(f"lancedb://{tmp_path}/lance/docs")  # and the allowed one still opens
    assert app.dashboard.controller.data.n == N and app.connect_bar.message.value == ""


def test_qdrant_servers_are_allowed_by_exact_host_and_port():
    prefixes = ["qdrant://LocalHost:6333", "qdrant://db.example:7000/docs"]
    assert eio.allowed_uri("qdrant://localhost/any", prefixes) == "qdrant://localhost:6333/any"
    assert eio.allowed_uri("qdrant://DB.example:7000/docs", prefixes) == "qdrant://db.example:7000/docs"
    for uri in ("qdrant://localhost:6334/any", "qdrant://db.example:7000/other", "qdrant://localhost.evil:6333/x",
                "qdrant://localhost:6333@evil:80/x", "qdrant+local://localhost:6333/x"):
        with pytest.raises(EmbeddingInputError, match="not allowed|expected qdrant"):
            eio.allowed_uri(uri, prefixes)
    with pytest.raises(EmbeddingInputError, match="turned off"):
        eio.allowed_uri("qdrant://localhost:6333/x", [])


def test_without_an_allowlist_the_field_is_off_and_says_how_to_turn_it_on(monkeypatch, tmp_path, rows):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    app = DashboardApp(SYNTHETIC, background=False)
    bar = app.connect_bar
    assert bar.field.disabled and bar.button.disabled
    assert "embgeo serve --allow-uri PREFIX" in bar.help.value and "allow_uris=" in bar.help.value
    app.open_uri(f"lancedb://{tmp_path}/x/docs")
    assert "turned off" in _one_line(bar.message.value) and app.dashboard.controller.data.n == START
    # the kernel's environment (what embgeo serve sets) turns it on
    monkeypatch.setenv(ALLOW_ENV, f"lancedb://{tmp_path}/a\nchroma://{tmp_path}/b")
    assert DashboardApp(SYNTHETIC, background=False).connect_bar.allow_uris == (f"lancedb://{tmp_path}/a",
                                                                               f"chroma://{tmp_path}/b")


def test_the_allowlist_variable_takes_lines_or_path_separators():
    env = {ALLOW_ENV: "lancedb:///data/a:qdrant://h:6333\n\n  chroma:///data/b  \n"}
    if os.pathsep == ":":  # POSIX: ':' separates only before another scheme
        assert allow_uris_from_env(env) == ("lancedb:///data/a", "qdrant://h:6333", "chroma:///data/b")
    assert allow_uris_from_env({ALLOW_ENV: f"lancedb:///a{os.pathsep}chroma:///b"}) == ("lancedb:///a", "chroma:///b")
    assert allow_uris_from_env({}) == ()


def test_cancel_stops_reading_between_pages(monkeypatch, tmp_path, rows):
    _needs("lancedb", "lancedb")
    uri = make("lancedb", tmp_path / "lance", "docs", rows)
    app = DashboardApp(SYNTHETIC, background=False, allow_uris=[f"lancedb://{tmp_path / 'lance'}"])
    real, calls = eio.from_lancedb, []

    def pressed_cancel(source, **kwargs):  # the user presses Cancel while the reader runs
        calls.append(source)
        app.connect_bar.cancel_button.click()
        return real(source, **kwargs)

    monkeypatch.setattr(eio, "from_lancedb", pressed_cancel)
    app.open_uri(uri)
    assert calls == [uri] and app.connect_bar.status.value.endswith(": cancelled")
    assert app.dashboard.controller.data.n == START and app.connect_bar.message.value == ""
    pages = []

    def stop_after_two(done, total, what):  # what the bar's callback does once Cancel is pressed
        pages.append(done)
        if len(pages) == 2:
            raise Cancelled(what)

    with pytest.raises(Cancelled):  # the reader stops at the callback, between two pages
        real(uri, page_size=10, progress=stop_after_two)
    assert pages == [0, 10]  # the start, then the first page: it stops there


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_allow_uri_reaches_the_kernels_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ALLOW_ENV, "lancedb:///from/the/shell")  # never inherited: only what serve allows
    execs = []
    monkeypatch.setattr(serve.os, "execve", lambda path, argv, env: execs.append((argv, env)))
    port = str(_free_port())
    assert cli.main(["serve", "--no-warm", "--port", port, "--allow-uri", "lancedb://rel/../data/lance",
                     "--allow-uri", "qdrant://LocalHost:6333"]) == 0
    (argv, env), = execs
    assert argv[:3] == [serve.sys.executable, "-m", "embgeo._voila_server"]
    assert env[ALLOW_ENV] == f"lancedb://{os.path.realpath(tmp_path)}/data/lance\nqdrant://localhost:6333"
    assert allow_uris_from_env(env) == (f"lancedb://{os.path.realpath(tmp_path)}/data/lance", "qdrant://localhost:6333")
    assert serve.ALLOW_URIS_ENV == ALLOW_ENV
    assert cli.main(["serve", "--no-warm", "--port", port]) == 0
    assert ALLOW_ENV not in execs[1][1]  # default: none
    capsys.readouterr()
    for bad, why in (("/data/lance", "is not a database URI"), ("mongodb://x/y", "unknown URI scheme")):
        assert cli.main(["serve", "--no-warm", "--port", port, "--allow-uri", bad]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert why in err and "--allow-uri: " in err and bad in err and err.count("\n") == 1, err
    assert len(execs) == 2


def test_the_live_panel_shows_the_database_search_beside_the_faiss_sweep(tmp_path, rows):
    _needs("lancedb", "lancedb")
    uri = make("lancedb", tmp_path / "lance", "docs", rows)
    app = DashboardApp(SYNTHETIC, background=False, allow_uris=[f"lancedb://{tmp_path / 'lance'}"])
    assert app.dashboard.live_box.layout.display == "none"  # a sample: no database to measure
    app.open_uri(uri)
    d = app.dashboard
    assert d.controller.live_source() == uri and uri in d.live_box.children[0].value
    d.live_queries.value = 40
    d.run_live_index()
    rep, page = d.live_report, d.live_page.value
    assert d.error.value == "" and rep.n_queries == 40 and rep.k == d.controller.k == 10 and rep.n == N
    for number in (rep.recall_at_k, rep.recall_at_k_ids, rep.latency_ms_p50, rep.latency_ms_p95, rep.latency_ms_p99):
        assert format_number(number) in page
    assert f"{rep.qps:,.0f}" in page and "Recall by query difficulty" in page and "Press Run above" in page
    # the set on show stood in for reading the collection again (checked against it first)
    assert rep.vectors_from.startswith(f"the given set ({N:,} rows") and "over the given set" in page
    # independently: the database's answers (as rows) against brute-force euclidean neighbours, own row left out
    x = d.controller.data.vectors
    q = rep.query_rows
    dist = ((x[q, None, :] - x[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(q)), q] = np.inf
    truth = np.argsort(dist, axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(rep.found, truth)])
    assert rep.recall_at_k_ids == pytest.approx(overlap) and rep.recall_at_k_ids == pytest.approx(1.0)  # flat search
    assert sum(b["n_queries"] for b in rep.difficulty.recall_by_bucket) == 40
    # embgeo's faiss sweep beside it once Index health has run
    d.index_holdout.value = 20
    d.run_index_health()
    page = d.live_page.value
    assert "embgeo faiss: " in page and "Index health's own sweep" in page
    assert page.count("<tr>") >= 1 + 1 + len(d.index_report.indexes)
