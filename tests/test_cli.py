"""The embgeo command: end to end through a subprocess, clean errors, and the subcommand registry."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from embgeo import cli
from embgeo.analysis.datasets import make_anisotropic


def _embgeo(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "embgeo", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def small_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "small.npy"
    np.save(path, make_anisotropic(400, 24, random_state=0))
    return path


@pytest.mark.slow
def test_report_end_to_end(small_npy, tmp_path):
    before = np.load(small_npy)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    done = _embgeo("report", small_npy, "--k", 5, "--sample", 100, "--json", out_json, "--html", out_html)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Verdicts:") and "\nGeometryReport: embedding geometry" in done.stdout
    assert "isotropy:" in done.stdout and "hubness:" in done.stdout
    d = json.loads(out_json.read_text())
    assert d["n"] == 400 and d["dim"] == 24 and d["hubness"]["k"] == 5
    assert d["intrinsic_dimension"]["twonn"] > 0
    assert 'src="http' not in out_html.read_text(encoding="utf-8")
    np.testing.assert_array_equal(np.load(small_npy), before)  # the input file is untouched


@pytest.mark.slow
def test_report_approximate_reports_recall(tmp_path):
    path, out_json = tmp_path / "medium.npy", tmp_path / "r.json"
    np.save(path, make_anisotropic(1000, 24, random_state=1))  # enough points per IVF list for k = 32
    done = _embgeo("report", path, "--k", 5, "--sample", 100, "--approximate", "--metric", "euclidean",
                   "--json", out_json)
    assert done.returncode == 0, done.stderr
    d = json.loads(out_json.read_text())
    assert d["exact"] is False and 0 < d["recall"] <= 1 and d["metric"] == "euclidean"
    assert d["hubness"]["neighbors_recall"] == d["recall"]


def test_memory_limit_reaches_the_join_and_bad_sizes_are_named(tmp_path, capsys, monkeypatch):
    import embgeo.analysis.embeddings.embedding_set as embedding_set
    from embgeo.analysis import approximate_knn

    assert [cli._memory_size(t) for t in ("8GB", "1.5GiB", "800MB", "2000")] == [8 * 10**9, int(1.5 * 2**30),
                                                                                 8 * 10**8, 2000]
    for bad in ("lots", "-1GB", "0", "8 parsecs"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a size such as 8GB"):
            cli._memory_size(bad)
    path = tmp_path / "medium.npy"
    np.save(path, make_anisotropic(1000, 24, random_state=1))
    limits = []
    monkeypatch.setattr(embedding_set, "approximate_knn", lambda *a, **kw: limits.append(kw["memory_limit"])
                        or approximate_knn(*a, **kw))
    assert cli.main(["report", str(path), "--k", "5", "--sample", "100", "--approximate", "--memory-limit", "2GB"]) == 0
    assert limits == [2 * 10**9]
    assert cli.main(["report", str(path), "--sampled", "--memory-limit", "2GB"]) == cli.EXIT_USAGE
    assert "--memory-limit applies to the full report" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    (b"this is not an array", "magic"),
    (None, "no such file"),
])
def test_bad_file_gives_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.npy"
    if content is not None:
        path.write_bytes(content)
    done = _embgeo("report", path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embgeo: error:") and message in lines[0].lower()
    assert str(path) in lines[0]


def test_errors_in_process(small_npy, tmp_path, capsys):
    assert cli.main(["report", "sample:nope"]) == 2
    assert "unknown sample 'nope'" in capsys.readouterr().err
    assert cli.main(["report", str(small_npy), "--k", "300"]) == 2  # 2k > n - 1
    assert "2k=600" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(small_npy), "--metric", "manhattan"])
    assert exc.value.code == cli.EXIT_USAGE  # a bad command line, not bad data
    assert cli.main(["report", str(small_npy), "--k", "3", "--sample", "50",
                     "--json", str(tmp_path / "missing-dir" / "r.json")]) == 2
    assert "missing-dir" in capsys.readouterr().err


def test_bundled_sample_loads():
    data = cli.load_embeddings("sample:sentences")
    assert data.dim == 384 and data.n > 1000


def test_registry_adds_subcommands(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_COMMANDS", dict(cli._COMMANDS))

    def configure(p: argparse.ArgumentParser):
        p.add_argument("--twice", action="store_true")

    @cli.subcommand("echo-test", help="a test command", configure=configure)
    def run(args):
        print("ran", args.twice)
        return 0

    assert cli.main(["echo-test", "--twice"]) == 0
    assert capsys.readouterr().out.strip() == "ran True"
    assert "echo-test" in cli.build_parser().format_help()
    with pytest.raises(ValueError, match="twice"):
        cli.subcommand("echo-test", help="", configure=configure)(run)


@pytest.mark.slow
def test_report_sampled(tmp_path):
    path, out_json = tmp_path / "medium.npy", tmp_path / "r.json"
    np.save(path, make_anisotropic(1500, 24, random_state=1))
    done = _embgeo("report", path, "--sampled", "--k", 5, "--sample", 200, "--subsample", 600, "--json", out_json)
    assert done.returncode == 0, done.stderr
    d = json.loads(out_json.read_text())
    assert d["mode"] == "sampled" and d["hubness"]["n"] == 600 and d["intrinsic_dimension"]["sample_size"] == 200
    assert "subsample of 600 rows" in d["basis"]["hubness"]
    done = _embgeo("report", path, "--subsample", 600)
    assert done.returncode == cli.EXIT_USAGE and done.stderr.strip() == "embgeo: error: --subsample applies only with --sampled"


@pytest.mark.slow
def test_ctrl_c_stops_the_report_promptly_and_leaves_no_scratch(tmp_path):
    """SIGINT during a report: exit 130 with one line, within seconds, and nothing written to the scratch
    directory. (At this size the float16 file is converted in memory; that a scratch map leaves nothing
    behind after an interrupt is tested in tests/analysis/io/test_streaming.py.)"""
    import os
    import signal
    import time

    path, scratch = tmp_path / "half.npy", tmp_path / "scratch"
    scratch.mkdir()
    np.save(path, make_anisotropic(250_000, 96, random_state=0).astype(np.float16))  # ~20 s of exact search
    env = {**os.environ, "EMBGEO_SCRATCH": str(scratch)}
    # SIGINT as a terminal's Ctrl-C finds it: a run started in the background (a CI runner's `cmd &`)
    # inherits SIGINT ignored, which Python keeps, and the signal would never arrive
    proc = subprocess.Popen([sys.executable, "-m", "embgeo", "report", str(path), "--k", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)  # past start-up and loading, into the neighbour search
    assert proc.poll() is None, proc.communicate()
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().endswith("embgeo: interrupted"), err
    assert time.perf_counter() - sent < 20
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_report_on_a_local_dask_cluster_matches_the_report_here(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")
    path = tmp_path / "medium.npy"
    np.save(path, make_anisotropic(1200, 16, random_state=3))
    here, there = tmp_path / "here.json", tmp_path / "there.json"
    assert _embgeo("report", path, "--k", 5, "--sample", 100, "--json", here).returncode == 0
    done = _embgeo("report", path, "--k", 5, "--sample", 100, "--json", there, "--dask", "local:2")
    assert done.returncode == 0, done.stderr
    a, b = json.loads(here.read_text()), json.loads(there.read_text())
    assert any("Dask cluster of 2 workers" in note for note in b["notes"])
    assert b["hubness"]["skewness"] == pytest.approx(a["hubness"]["skewness"], rel=1e-9)
    assert b["isotropy"]["isoscore"] == pytest.approx(a["isotropy"]["isoscore"], rel=1e-6)
    approx = tmp_path / "approx.json"
    done = _embgeo("report", path, "--k", 5, "--sample", 100, "--approximate", "--json", approx, "--dask", "local:2")
    assert done.returncode == 0, done.stderr
    c = json.loads(approx.read_text())
    assert any("approximate join" in note and "Dask cluster of 2 workers" in note for note in c["notes"])
    assert c["exact"] is False and c["recall"] >= 0.9


def test_the_sampled_report_takes_the_cluster_too(tmp_path, monkeypatch):
    import embgeo.analysis

    path = tmp_path / "small.npy"
    np.save(path, make_anisotropic(300, 8, random_state=3))
    seen = {}
    real = embgeo.analysis.sampled_report

    def spy(data, **kwargs):
        seen.update(kwargs)
        return real(data, **{key: value for key, value in kwargs.items() if key != "cluster"})

    monkeypatch.setattr(embgeo.analysis, "sampled_report", spy)
    assert cli.main(["report", str(path), "--sampled", "--k", "5", "--sample", "50", "--subsample", "200",
                     "--dask", "tcp://127.0.0.1:1"]) == 0
    assert seen["cluster"] == "tcp://127.0.0.1:1"  # handed on as given (the sampled report connects)


def test_without_dask_the_engine_names_the_extra(monkeypatch):
    import builtins

    from embgeo.analysis import EmbeddingInputError
    from embgeo.analysis.distributed import require_dask

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(EmbeddingInputError, match=r"pip install 'embgeo\[dask\]'"):
        require_dask()


def test_a_bug_is_one_line_with_status_70_and_the_traceback_on_request(small_npy, monkeypatch, capsys):
    """An exception that is not bad input is embgeo's fault: one line saying so (exit 70, EX_SOFTWARE),
    never a traceback unless EMBGEO_TRACEBACK asks for it."""
    def broken(*args, **kwargs):
        raise RuntimeError("the kernel fell over")

    monkeypatch.setattr("embgeo.analysis.geometry_report", broken)
    assert cli.main(["report", str(small_npy)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: the kernel fell over" in err
    assert "Traceback" not in err and "please report" in err
    monkeypatch.setenv("EMBGEO_TRACEBACK", "1")
    assert cli.main(["report", str(small_npy)]) == cli.EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err
