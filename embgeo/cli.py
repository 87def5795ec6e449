"""The ``embgeo`` command (also ``python -m embgeo``).

Each subcommand is one function registered with :func:`subcommand`, which names it, gives its
help line, and declares its arguments through a small ``configure(parser)`` function; ``main`` builds
the parser from the registry. Adding ``transform``, ``compare`` or ``index-stats`` is one more
decorated function (in this module, or in a module listed in ``_COMMAND_MODULES``), with no change to
the parser code.

Exit statuses (no traceback for any of them; each prints one line, ``embgeo: ...``, on stderr):

* 0: done;
* 2 (:data:`EXIT_BAD_INPUT`): the data cannot be analysed as given: a missing or unreadable file,
  invalid vectors, a value that does not fit the data (``--k`` larger than the set allows);
* 64 (:data:`EXIT_USAGE`, ``EX_USAGE`` of sysexits.h): the command line itself is wrong: an unknown
  option, a bad option value, options that do not combine;
* 70 (:data:`EXIT_INTERNAL`, ``EX_SOFTWARE``): a bug in embgeo; the line asks for a report, and
  ``EMBGEO_TRACEBACK=1`` shows the traceback;
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import traceback
from dataclasses import dataclass
from typing import Callable

#: Modules imported before the parser is built, so that their @subcommand functions register.
_COMMAND_MODULES: tuple[str, ...] = ("embgeo._commands_transform", "embgeo._commands_index", "embgeo._commands_serve",
                                     "embgeo._commands_shift", "embgeo._commands_layers", "embgeo._commands_live")
#: Prefix of the bundled samples: ``sample:words``, ``sample:sentences``.
SAMPLE_PREFIX = "sample:"
#: Exit statuses; see the module docstring.
EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 64, 70, 130


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_COMMANDS: dict[str, Command] = {}


def subcommand(name: str, *, help: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> exit status`` as the subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]):
        if name in _COMMANDS:
            raise ValueError(f"subcommand {name!r} is registered twice")
        _COMMANDS[name] = Command(name, help, configure, run)
        return run

    return register


class UsageError(Exception):
    """A command line that cannot be run as written; shown as one line, exit status :data:`EXIT_USAGE`."""


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with :data:`EXIT_USAGE` for a bad command line (its own default is 2, which
    here means bad data)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def load_embeddings(path: str):
    """Load ``path`` with :func:`embgeo.analysis.io.load`, or a bundled sample named ``sample:NAME``."""
    if path.startswith(SAMPLE_PREFIX):
        from embgeo.analysis.datasets import load_sample

        return load_sample(path[len(SAMPLE_PREFIX):])
    from embgeo.analysis.io import load

    return load(path)


def add_input_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="embeddings file (.npy, .npz, .parquet, .csv, .safetensors, .fvecs, .hdf5), "
                                     "a directory or quoted glob of .npy/Parquet shards, a database URI "
                                     "(lancedb://PATH/TABLE, chroma://PATH/COLLECTION, qdrant+local://PATH/COLLECTION, "
                                     "qdrant://HOST:PORT/COLLECTION, milvus://FILE.db/COLLECTION, hf://PATH), or a "
                                     "bundled sample: sample:words, sample:sentences")


def add_metric_argument(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """The --metric option, its choices embgeo.analysis.METRICS (one list for every command)."""
    from embgeo.analysis import METRICS

    parser.add_argument("--metric", choices=METRICS, default=default, help=help)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _memory_size(text: str) -> int:
    """A byte count: a number with an optional unit (``8GB``, ``1.5GiB``, ``800MB``, ``2000000000``)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else None
    if unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 8GB, 1.5GiB or 800MB, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


# --------------------------------------------------------------------------------------------- report


def _configure_report(p: argparse.ArgumentParser) -> None:
    add_input_argument(p)
    add_metric_argument(p, default="cosine", help="similarity of the neighbour search (default: cosine)")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per point (default: 10)")
    p.add_argument("--approximate", action="store_true",
                   help="approximate neighbours (IVF join, re-ranked exactly); the measured recall is reported")
    p.add_argument("--sampled", action="store_true",
                   help="for sets too large for a whole k-NN graph: moments over all rows, neighbour statistics "
                        "from --sample queries searched against all rows (with intervals), hubness from a "
                        "--subsample's own graph")
    p.add_argument("--sample", type=_positive_int, default=2000,
                   help="query points for concentration and cosine-vs-dot, and with --sampled for every "
                        "neighbour statistic (default: 2000)")
    p.add_argument("--subsample", type=_positive_int, default=None,
                   help="with --sampled: rows whose own graph gives hubness (default: 100000, at most n)")
    p.add_argument("--memory-limit", type=_memory_size, default=None, metavar="SIZE",
                   help="memory the neighbour search may hold, e.g. 2GB (default: half the available memory); "
                        "a tight limit makes the approximate join work a block of points at a time")
    p.add_argument("--dask", metavar="SCHEDULER", default=None,
                   help="run the moments, the neighbour table (exact, or with --approximate the join's blocks) and "
                        "the query sample on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for "
                        "N local worker processes (needs embgeo[dask])")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    p.add_argument("--html", metavar="OUT", help="also write a standalone HTML page with charts to OUT")


@subcommand("report", help="isotropy, intrinsic dimension, hubness and similarity of an embedding set",
            configure=_configure_report)
def _run_report(args: argparse.Namespace) -> int:
    from embgeo.analysis import geometry_report, sampled_report

    if args.subsample is not None and not args.sampled:
        raise UsageError("--subsample applies only with --sampled")
    if args.memory_limit is not None and args.sampled:
        raise UsageError("--memory-limit applies to the full report, not --sampled (whose memory does not grow with n)")
    data = load_embeddings(args.path)
    if args.sampled:
        extra = {} if args.subsample is None else {"subsample": args.subsample}
        report = sampled_report(data, metric=args.metric, k=args.k, sample=args.sample,
                                exact_subsample=None if not args.approximate else False,
                                progress=sys.stderr.isatty(), cluster=args.dask, **extra)
    else:
        report = geometry_report(data, metric=args.metric, k=args.k, exact=not args.approximate,
                                 sample=args.sample, progress=sys.stderr.isatty(), memory_limit=args.memory_limit,
                                 cluster=args.dask)
    print(repr(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2, allow_nan=False)
    if args.html:
        report.to_html(args.html)
    return 0


# --------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    parser = _Parser(prog="embgeo", description="Embedding-geometry diagnostics.")
    from embgeo import __version__

    parser.add_argument("--version", action="version", version=f"embgeo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for cmd in _COMMANDS.values():
        cmd.configure(subparsers.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``embgeo`` command; returns the exit status (see the module docstring).

    A bad command line exits from argparse with :data:`EXIT_USAGE` (``SystemExit``, as argparse does).
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        from embgeo.analysis import EmbeddingInputError
    except KeyboardInterrupt:  # Ctrl-C while the command modules import
        print("embgeo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED

    try:
        return _COMMANDS[args.command].run(args)
    except UsageError as exc:
        print(f"embgeo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (EmbeddingInputError, OSError) as exc:  # OSError: unreadable input, unwritable output
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename is not None:
            message = f"{exc.filename}: {exc.strerror or message}"
        print(f"embgeo: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("embgeo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: one line that says so (the traceback on request)
        if os.environ.get("EMBGEO_TRACEBACK"):
            traceback.print_exc()
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"embgeo: internal error: {type(exc).__name__}: {exc} (at {os.path.basename(where.filename)}:"
              f"{where.lineno}); this is a bug in embgeo, please report it with the command that caused it "
              "(EMBGEO_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
