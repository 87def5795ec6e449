"""embgeo shift end to end on small files: the headline numbers, the JSON, and one-line errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import embgeo._commands_shift  # noqa: F401  (registers the subcommand even if cli.py did not list it)
from embgeo.cli import EXIT_BAD_INPUT, EXIT_USAGE, main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("shift")
    corpus = (rng.normal(size=(300, 8)) * np.geomspace(3.0, 0.5, 8)).astype(np.float32)
    queries = (rng.normal(size=(60, 8)) * np.geomspace(3.0, 0.5, 8) + 2.0).astype(np.float32)
    np.save(root / "corpus.npy", corpus)
    np.savez(root / "queries.npz", vectors=queries, text=np.array([f"q{i}" for i in range(60)]))
    np.save(root / "wide.npy", rng.normal(size=(60, 9)).astype(np.float32))
    bad = queries.copy()
    bad[7, 2] = np.nan
    np.save(root / "nan.npy", bad)
    return root


def test_shift_prints_the_headline_and_writes_json(files, tmp_path, capsys):
    out = tmp_path / "shift.json"
    code = main(["shift", str(files / "corpus.npy"), str(files / "queries.npz"), "--metric", "euclidean",
                 "--k", "5", "--sample-size", "100", "--permutations", "49", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert text.startswith("shift: ") and "centroid gap" in text and "classifier AUC" in text
    assert "center on the pooled mean" in text
    # the hardest queries are named by the queries' text column (q0 ... q59) with their k-th distance
    assert re.search(r"^  hardest queries +q\d+ \(\d[\d.e+-]*\); q\d+ \(", text, re.MULTILINE)
    assert re.search(r"^  MMD\^2 linear .* on the samples, p = 0\.02; .* over all rows$", text, re.MULTILINE)
    d = json.loads(out.read_text())
    assert d["metric"] == "euclidean" and d["k"] == 5 and d["n_queries"] == 60
    assert d["mmd_p_value"] == pytest.approx(1 / 50) and d["classifier_auc"] > 0.9
    assert d["mmd_linear_p_value"] == pytest.approx(1 / 50) and d["mmd_linear_sample"] > 0
    assert all(0.0 <= t["classifier_auc"] <= 1.0 for t in d["transforms"])
    assert d["centroid_gap"] == pytest.approx(2.0 * np.sqrt(8), rel=0.25)  # the planted offset
    assert {v["title"] for v in d["verdicts"]} >= {"Centroid gap", "Two-sample tests"}


def test_shift_prints_the_retrieval_columns_of_each_transform(files, tmp_path, capsys):
    """Each transform row gets overlap@k (1 in the raw row and, under euclidean, after centring: the same
    neighbours) and, with --index flat, the exact index's recall@k in that space (1) by bucket."""
    out = tmp_path / "shift.json"
    code = main(["shift", str(files / "corpus.npy"), str(files / "queries.npz"), "--metric", "euclidean",
                 "--k", "5", "--sample-size", "100", "--permutations", "0", "--index", "flat", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "on 60 queries against 100 corpus rows: overlap@5" in text and "flat() recall@5, by bucket" in text
    for name in ("none", "center on the corpus mean", "center on the pooled mean"):
        assert re.search(rf"^    {name} .* overlap@5 +1 +recall@5 +1 \[1\.00 1\.00 1\.00 1\.00\]$", text,
                         re.MULTILINE), name
    zca = re.search(r"^    ZCA whitening fitted on the corpus .* overlap@5 +([\d.]+) +recall@5 +1 ", text, re.MULTILINE)
    assert zca and 0.0 <= float(zca.group(1)) < 1.0  # whitening changes the euclidean neighbours
    rows = json.loads(out.read_text())["transforms"]
    assert [t["overlap_at_k"] for t in rows[:3]] == [1.0, 1.0, 1.0]
    assert all(t["recall flat()"] == 1.0 and len(t["recall flat() by bucket"]) == 4 for t in rows)
    assert "recall before and after" not in text


def test_shift_on_a_bundled_sample_against_a_file(files, capsys):
    # sample: names are accepted like files; this one (384-d) does not match the 8-d queries
    code = main(["shift", "sample:sentences", str(files / "queries.npz"), "--no-transforms"])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT and err.count("\n") == 0
    assert err.startswith("embgeo: error:") and "dimension 8" in err and "384" in err


@pytest.mark.parametrize("queries, expected", [
    ("wide.npy", "dimension 9"),
    ("nan.npy", "1 of 60 rows contain NaN"),
    ("missing.npy", "missing.npy"),
])
def test_bad_input_exits_2_with_one_line(files, capsys, queries, expected):
    code = main(["shift", str(files / "corpus.npy"), str(files / queries), "--permutations", "0"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == EXIT_BAD_INPUT and err.count("\n") == 0 and "Traceback" not in captured.err
    assert err.startswith("embgeo: error:") and expected in err


def test_too_few_queries_and_bad_options(files, tmp_path, capsys):
    np.save(tmp_path / "few.npy", np.load(files / "corpus.npy")[:4] + 1.0)
    assert main(["shift", str(files / "corpus.npy"), str(tmp_path / "few.npy")]) == EXIT_BAD_INPUT
    assert "too few queries" in capsys.readouterr().err
    assert main(["shift", str(files / "corpus.npy"), str(files / "queries.npz"), "--permutations", "-1"]) == EXIT_USAGE
    assert "--permutations" in capsys.readouterr().err
    assert main(["shift", str(files / "corpus.npy"), str(files / "queries.npz"), "--sample-size", "20000"]) \
        == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample_size=20,000" in err and "use at most 10,000" in err
    with pytest.raises(SystemExit) as info:
        main(["shift", str(files / "corpus.npy"), str(files / "queries.npz"), "--index", "annoy"])
    assert info.value.code == EXIT_USAGE
