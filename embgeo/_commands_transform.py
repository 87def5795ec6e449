"""``embgeo transform`` and ``embgeo compare``: post-process an embedding file, and compare two spaces.

``transform`` writes ``.npy`` (the vectors only) or ``.npz``: the vectors under ``vectors``, the item
weights under ``weights`` and every metadata column as a 1-D array of the same name (text as fixed-width
unicode, never pickled objects), which is exactly what :func:`embgeo.analysis.io.load` reads back, so
``embgeo compare IN OUT`` compares the same items with their labels and weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .cli import UsageError, _positive_int, add_input_argument, add_metric_argument, load_embeddings, subcommand

#: Output formats of ``embgeo transform``.
OUTPUT_SUFFIXES = (".npy", ".npz")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


# --------------------------------------------------------------------------------------------- transform


def _configure_transform(p: argparse.ArgumentParser) -> None:
    from embgeo.analysis import TRANSFORMS

    add_input_argument(p)
    p.add_argument("out", help="output file: .npy (vectors only) or .npz (vectors, weights and metadata columns)")
    p.add_argument("--method", required=True, choices=tuple(TRANSFORMS),
                   help="center, l2, abtt (all-but-the-top), pca-whiten, zca, zipfian (frequency-weighted "
                        "whitening; needs weights), phis, rogue (remove rogue dimensions)")
    p.add_argument("--k", type=_positive_int, metavar="K",
                   help="components: directions removed by abtt (default d/100), or components kept by "
                        "pca-whiten / zca / zipfian (default all)")
    p.add_argument("--eps", type=_positive_float,
                   help="whitening regulariser relative to the largest eigenvalue: a number in (0, 1] "
                        "(default 1e-6)")
    p.add_argument("--weighted", action="store_true",
                   help="fit means and covariances weighted by the item weights (zipfian always is)")


def _transform_params(args: argparse.Namespace) -> dict:
    params = {}
    if args.k is not None:
        if args.method not in ("abtt", "pca-whiten", "zca", "zipfian"):
            raise UsageError(f"--k applies to abtt, pca-whiten, zca and zipfian, not {args.method}")
        params["n_components"] = args.k
    if args.eps is not None:
        if args.method not in ("pca-whiten", "zca", "zipfian"):
            raise UsageError(f"--eps applies to pca-whiten, zca and zipfian, not {args.method}")
        params["eps"] = args.eps
    return params


def save_embeddings(es, path: str) -> list[str]:
    """Write a set to ``.npy`` or ``.npz`` (see the module docstring); returns what was left out."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"{path}: output must end in .npy or .npz, not {suffix or 'no extension'!r}")
    vectors = np.ascontiguousarray(es.vectors)
    columns = [] if es.metadata is None else [str(c) for c in es.metadata.columns]
    if suffix == ".npy":
        np.save(path, vectors)
        return (["weights"] if es.weights is not None else []) + columns
    arrays = {"vectors": vectors}
    if es.weights is not None:
        arrays["weights"] = np.asarray(es.weights)
    for name, column in zip(columns, [] if es.metadata is None else es.metadata.columns):
        if name in arrays:
            raise UsageError(f"metadata column {name!r} clashes with the array of that name in the .npz")
        values = es.metadata[column].to_numpy()
        arrays[name] = values.astype(str) if values.dtype == object else values  # never pickle
    with open(path, "wb") as f:  # a file object: np.savez would otherwise append .npz to odd names
        np.savez(f, **arrays)
    return []


@subcommand("transform", help="post-process embeddings (centre, whiten, ...) and write the result",
            configure=_configure_transform)
def _run_transform(args: argparse.Namespace) -> int:
    from embgeo.analysis import apply_transform

    params = _transform_params(args)
    data = load_embeddings(args.path)
    out = apply_transform(data, args.method, weighted=args.weighted or None, **params)
    dropped = save_embeddings(out, args.out)
    print(f"{args.method}: {data.n} x {data.dim} -> {out.n} x {out.dim}, written to {args.out}")
    if dropped:
        print(f"note: .npy keeps only the vectors; {', '.join(dropped)} not written (use .npz to keep them)",
              file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------- compare


def _configure_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="space A (before): an embeddings file or sample:NAME")
    p.add_argument("b", help="space B (after): the same items, row for row, for neighbourhood preservation")
    add_metric_argument(p, default="cosine", help="similarity of the neighbour searches (default: cosine)")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per point (default: 10)")
    p.add_argument("--labels", metavar="COLUMN",
                   help="metadata column of class labels: adds leave-one-out k-NN accuracy in each space")
    p.add_argument("--sample", type=_positive_int, default=2000,
                   help="query points of the sampled report parts (default: 2000)")
    p.add_argument("--no-similarity", dest="similarity", action="store_false",
                   help="leave out the representation-similarity block (CKA, SVCCA/PWCCA, Procrustes, mutual "
                        "k-NN, RSA), computed by default when A and B hold the same number of items")
    p.add_argument("--json", metavar="OUT", help="also write the comparison as JSON to OUT")


@subcommand("compare", help="geometry of two embedding spaces side by side, with neighbourhood preservation",
            configure=_configure_compare)
def _run_compare(args: argparse.Namespace) -> int:
    from embgeo.analysis import compare

    a, b = load_embeddings(args.a), load_embeddings(args.b)
    result = compare(a, b, metric=args.metric, k=args.k, labels=args.labels, sample=args.sample,
                     similarity=args.similarity)
    print(repr(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=2, allow_nan=False)
    return 0
