"""embgeo transform / compare / index-stats end to end on small files, with clean one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

# Registers the subcommands even before embgeo.cli lists these modules in _COMMAND_MODULES.
import embgeo._commands_index  # noqa: F401
import embgeo._commands_transform  # noqa: F401
from embgeo.analysis.io import load
from embgeo.cli import main


@pytest.fixture(scope="module")
def words_npz(tmp_path_factory):
    """200 anisotropic vectors with a text column, a label column and Zipfian weights."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, 16)) * np.geomspace(3.0, 0.3, 16) + 1.0).astype(np.float32)
    path = tmp_path_factory.mktemp("cli") / "words.npz"
    np.savez(path, vectors=x, weights=1.0 / np.arange(1, 201), text=np.array([f"w{i}" for i in range(200)]),
             topic=np.arange(200) % 4)
    return path


def test_transform_then_compare(words_npz, tmp_path, capsys):
    before = np.load(words_npz)["vectors"].copy()
    out = tmp_path / "zipf.npz"
    assert main(["transform", str(words_npz), str(out), "--method", "zipfian", "--eps", "1e-5"]) == 0
    assert "zipfian: 200 x 16 -> 200 x 16" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(words_npz)["vectors"], before)  # input file untouched

    back = load(out)  # metadata columns and weights survive the round trip
    assert back.metadata["text"].tolist()[:2] == ["w0", "w1"] and back.weights is not None
    p = back.weights / back.weights.sum()
    z = back.vectors.astype(np.float64)
    np.testing.assert_allclose((z * p[:, None]).T @ z, np.eye(16), atol=1e-3)

    report = tmp_path / "cmp.json"
    code = main(["compare", str(words_npz), str(out), "--k", "5", "--sample", "50", "--labels", "topic",
                 "--json", str(report)])
    text = capsys.readouterr().out
    assert code == 0 and text.startswith("Comparison:") and "isotropy.isoscore" in text
    d = json.loads(report.read_text())
    assert 0 < d["neighborhood_preservation"] < 1 and d["k"] == 5
    assert set(d["knn_accuracy"]) == {"a", "b"}
    mean_cos = next(r for r in d["rows"] if r["metric"] == "isotropy.mean_cosine")
    assert mean_cos["a"] > 0.1 and mean_cos["change"] < 0


def test_transform_to_npy_keeps_only_vectors(words_npz, tmp_path, capsys):
    out = tmp_path / "abtt.npy"
    assert main(["transform", str(words_npz), str(out), "--method", "abtt", "--k", "2"]) == 0
    assert "weights, text, topic not written" in capsys.readouterr().err
    x = np.load(out)
    assert x.shape == (200, 16) and x.dtype == np.float32


@pytest.mark.parametrize("argv, message, status", [
    (["transform", "{npz}", "{tmp}/o.txt", "--method", "zca"], "output must end in .npy or .npz", 64),
    (["transform", "{npy}", "{tmp}/o.npy", "--method", "zipfian"], "needs item weights", 2),
    (["transform", "{npz}", "{tmp}/o.npy", "--method", "center", "--k", "3"], "--k applies to", 64),
    (["transform", "{tmp}/missing.npy", "{tmp}/o.npy", "--method", "l2"], "missing.npy", 2),
    (["compare", "{npz}", "{npz}", "--labels", "nope"], "no metadata column 'nope'", 2),
    (["compare", "{npz}", "{npy}", "--labels", "topic"], "A has 200 and B 50", 2),
    (["index-stats", "{npz}", "--queries", "{tmp}/q.npy"], "queries have dimension 3", 2),
])
def test_errors_are_one_line_with_status_2_for_data_and_64_for_usage(words_npz, tmp_path, capsys, argv, message,
                                                                      status):
    npy = tmp_path / "plain.npy"
    np.save(npy, np.load(words_npz)["vectors"][:50])
    np.save(tmp_path / "q.npy", np.ones((5, 3), dtype=np.float32))
    argv = [a.format(npz=words_npz, npy=npy, tmp=tmp_path) for a in argv]
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert err.startswith("embgeo: error:") and message in err and "\n" not in err


def test_bad_option_values_exit_64(words_npz, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["index-stats", str(words_npz), "--indexes", "hnsw,annoy"])
    assert exc.value.code == 64 and "hnsw,annoy" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["transform", str(words_npz), "o.npy", "--method", "zca", "--eps", "-1"])
    assert exc.value.code == 64


def test_index_stats_json_keys(tmp_path, capsys):
    rng = np.random.default_rng(1)
    corpus = tmp_path / "corpus.npy"
    np.save(corpus, rng.normal(size=(3000, 24)).astype(np.float32))
    queries = tmp_path / "queries.npy"
    np.save(queries, rng.normal(size=(100, 24)).astype(np.float32))
    out = tmp_path / "idx.json"
    assert main(["index-stats", str(corpus), "--queries", str(queries), "--k", "10", "--json", str(out)]) == 0
    assert capsys.readouterr().out.startswith("IndexReport")
    d = json.loads(out.read_text())
    assert d["k"] == 10 and d["n_queries"] == 100 and d["exact"]["seconds"] > 0
    kinds = {row["kind"] for row in d["indexes"]}
    assert kinds == {"hnsw", "ivf", "sq8"}
    for row in d["indexes"]:
        assert {"kind", "params", "recall_at_k", "qps", "build_seconds", "bytes_per_vector"} <= set(row)
        assert 0 <= row["recall_at_k"] <= 1 and row["qps"] > 0
    assert len([r for r in d["indexes"] if r["kind"] == "hnsw"]) == 3  # the quick sweep
    assert {"lid_median", "rc_median", "expansion_median", "recall_by_bucket"} <= set(d["difficulty"])
    assert 0 <= d["reachability"]["never_retrieved_rate"] <= 1


def test_compare_prints_and_writes_the_similarity_block(words_npz, tmp_path, capsys):
    x = np.load(words_npz)["vectors"].astype(np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
    rotated = tmp_path / "rotated.npy"
    np.save(rotated, (2.0 * x @ q).astype(np.float32))  # the same geometry: CKA 1, Procrustes 0
    report = tmp_path / "sim.json"
    assert main(["compare", str(words_npz), str(rotated), "--k", "5", "--sample", "50", "--json", str(report)]) == 0
    assert "similarity: linear CKA 1.000" in capsys.readouterr().out
    sim = json.loads(report.read_text())["similarity"]
    assert sim["linear_cka"] == pytest.approx(1.0, abs=1e-5) and sim["procrustes_distance"] < 1e-3
    assert sim["mutual_knn"] == pytest.approx(1.0) and sim["n"] == 200 and sim["dim_b"] == 16
    assert main(["compare", str(words_npz), str(rotated), "--k", "5", "--sample", "50", "--no-similarity",
                 "--json", str(report)]) == 0
    assert "similarity:" not in capsys.readouterr().out and json.loads(report.read_text())["similarity"] is None
