"""``embgeo layers``: isotropy, intrinsic dimension, hubness and neighbourhoods across a model's layers.

Runs :func:`embgeo.analysis.layer_geometry` on the texts of a UTF-8 file, one text per line (empty lines
skipped, with the same lines of ``--labels``, which pairs with the texts line by line), with the bundled all-MiniLM-L6-v2 (``all-MiniLM-L6-v2``) or a local transformers /
sentence-transformers model folder; nothing is downloaded. It prints one row per layer (0 = the
embedding output) and, with ``--json``, writes ``LayerGeometry.to_dict()``: ``layers``, ``mean_cosine``,
``isoscore``, ``effective_rank``, ``twonn``, ``gride_n1``, ``gride_dimension``, ``hubness_skewness``,
``knn_overlap_last``, ``label_agreement`` (with ``--labels``), ``n_truncated`` and ``notes``.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli import UsageError, _positive_int, subcommand


def _layer_list(text: str):
    if text.strip() == "all":
        return "all"
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated layer indices such as 0,3,-1, "
                                         f"got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected 'all' or at least one layer index, got {text!r}")
    return values


def _configure_layers(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="all-MiniLM-L6-v2 (the bundled model) or a local transformers / "
                                 "sentence-transformers model folder")
    p.add_argument("texts", help="UTF-8 text file, one text per line (empty lines are skipped)")
    p.add_argument("--pooling", choices=("mean", "cls", "tokens"), default="mean",
                   help="rows per layer: masked mean per text (default, as sentence-transformers pools), the "
                        "first token, or a sample of --max-tokens tokens")
    p.add_argument("--layers", type=_layer_list, default="all", metavar="LIST",
                   help="'all' (default) or comma-separated hidden-state indices (0 = embedding output, -1 = last)")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per row (default: 10)")
    p.add_argument("--max-tokens", type=_positive_int, default=10_000,
                   help="with --pooling tokens: token rows kept per layer (default: 10000)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--labels", metavar="FILE",
                   help="a class per text, line by line with the texts file (line i labels the text on line i; "
                        "a blank text line skips its label line)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT")


def _read_lines(path: str, what: str) -> list[str]:
    """Every line of the file, blank ones included (their positions pair texts with labels)."""
    from embgeo.analysis import EmbeddingInputError

    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\r\n") for line in f]
    except UnicodeDecodeError as exc:
        raise EmbeddingInputError(f"{path}: the {what} file is not UTF-8 text ({exc.reason} at byte "
                                  f"{exc.start})") from None


def _texts_and_labels(texts_path: str, labels_path: str | None):
    """The non-blank text lines and, line by line, their labels: a blank text line drops its label line
    with it, so the labels never shift; a text whose label line is blank is an error."""
    from embgeo.analysis import EmbeddingInputError

    lines = _read_lines(texts_path, "texts")
    keep = [i for i, line in enumerate(lines) if line.strip()]
    if not keep:
        raise EmbeddingInputError(f"{texts_path}: the texts file holds no non-empty lines")
    texts = [lines[i] for i in keep]
    if labels_path is None:
        return texts, None
    raw = _read_lines(labels_path, "labels")
    n_labels = max((i + 1 for i, line in enumerate(raw) if line.strip()), default=0)  # trailing blanks aside
    if n_labels != keep[-1] + 1:
        raise EmbeddingInputError(
            f"{labels_path}: {n_labels:,} label lines for the {keep[-1] + 1:,} lines of {texts_path} "
            f"({len(texts):,} texts); labels go line by line with the texts (a blank text line skips its label "
            "line), so give one label line per text line")
    blank = [i for i in keep if not raw[i].strip()]
    if blank:
        raise EmbeddingInputError(f"{labels_path}: line {blank[0] + 1} is blank, but line {blank[0] + 1} of "
                                  f"{texts_path} holds a text ({len(blank):,} such lines); give every text a label")
    return texts, [raw[i] for i in keep]


@subcommand("layers", help="isotropy, intrinsic dimension and hubness across a model's layers over texts",
            configure=_configure_layers)
def _run_layers(args: argparse.Namespace) -> int:
    from embgeo.analysis import EmbeddingInputError, layer_geometry

    if args.max_tokens != 10_000 and args.pooling != "tokens":
        raise UsageError("--max-tokens applies only with --pooling tokens")
    texts, labels = _texts_and_labels(args.texts, args.labels)
    try:
        result = layer_geometry(args.model, texts, layers=args.layers, pooling=args.pooling,
                                max_tokens=args.max_tokens, batch_size=args.batch_size, k=args.k, labels=labels,
                                device=args.device, progress=sys.stderr.isatty())
    except ModuleNotFoundError as exc:  # torch / transformers / the bundled weights: name the extra
        raise EmbeddingInputError(str(exc)) from None
    print(repr(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=2, allow_nan=False)
    return 0
