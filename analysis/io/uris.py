"""Database URIs in one canonical form, and an allowlist of them (what a shared server may open).

:func:`canonical_uri` writes a URI the way its reader will open it: the folder or file of
``lancedb://``, ``chroma://``, ``qdrant+local://``, ``milvus://`` and ``hf://`` made absolute with every
``..`` and symbolic link resolved, and ``qdrant://HOST:PORT/COLLECTION`` with its host lower-cased and
its port written out. :func:`allowed_uri` checks one against allowlisted prefixes on those canonical
forms, so ``lancedb:///data/lance/../../etc/x`` or a link out of the allowed folder do not pass as
``lancedb:///data/lance/...``: a path is allowed when it is the prefix's path or inside it (component
by component: ``/data/lancelot`` is not inside ``/data/lance``; a LanceDB table's ``NAME.lance`` folder
resolved too), a Qdrant server when host and port are
exactly the prefix's (and the collection too, when the prefix names one). A prefix allows only its own
scheme. The reader is then given the canonical URI, so what was checked is what is opened.
"""

from __future__ import annotations

import os

from .._core import EmbeddingInputError
from .databases import SCHEMES, is_uri, path_and_name, split_uri

#: Schemes whose rest is a path on this machine (a folder or file, then a collection name except hf://).
PATH_SCHEMES = ("lancedb", "chroma", "qdrant+local", "milvus", "hf")
QDRANT_PORT = 6333


def canonical_uri(uri: str, *, prefix: bool = False) -> str:
    """``uri`` with its path absolute and resolved (``..`` and links), or its Qdrant address explicit.

    ``prefix=True`` reads an allowlist entry: a path-scheme prefix may stop at a folder
    (``lancedb:///data/lance``), a Qdrant prefix at ``HOST:PORT``. Raises EmbeddingInputError for a
    string that is not a URI, an unknown scheme, and a URI without its collection.
    """
    if not is_uri(uri):
        raise EmbeddingInputError(f"{uri!r} is not a database URI; expected one of "
                                  f"{', '.join(s + '://...' for s in SCHEMES)}")
    scheme, rest = split_uri(uri)
    if scheme == "qdrant":
        return f"qdrant://{_qdrant_address(uri, rest, prefix)}"
    if not rest.strip():
        raise EmbeddingInputError(f"{uri}: no path after {scheme}://")
    if scheme == "hf" or prefix:
        return f"{scheme}://{os.path.realpath(rest)}"
    folder, name = path_and_name(uri, "TABLE" if scheme == "lancedb" else "COLLECTION")
    if name in (".", ".."):
        raise EmbeddingInputError(f"{uri}: {name!r} is not a {'table' if scheme == 'lancedb' else 'collection'} name")
    return f"{scheme}://{os.path.join(os.path.realpath(folder), name)}"


def _qdrant_address(uri: str, rest: str, prefix: bool) -> str:
    address, _, collection = rest.rstrip("/").partition("/")
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    bad = (not host or "@" in address or "/" in collection or any(c in rest for c in "?#")
           or (port and not port.isdigit()) or (not prefix and not collection))
    if bad:
        raise EmbeddingInputError(f"{uri}: expected qdrant://HOST:PORT/COLLECTION, e.g. qdrant://localhost:6333/docs")
    address = f"{host.lower()}:{int(port or QDRANT_PORT)}"
    return f"{address}/{collection}" if collection else address


def allowed_uri(uri: str, prefixes) -> str:
    """The canonical form of ``uri`` if an allowlisted prefix covers it, else an EmbeddingInputError.

    ``prefixes``: URI prefixes (see the module docstring); none allows nothing. The message names
    the URI as given and the allowed prefixes, never the resolved path.
    """
    prefixes = [p for p in (prefixes or ()) if str(p).strip()]
    if not prefixes:
        raise EmbeddingInputError("opening database URIs is turned off here (no allowlisted prefixes)")
    uri = str(uri).strip()
    wanted = canonical_uri(uri)
    scheme, rest = split_uri(wanted)
    for entry in prefixes:
        allowed = canonical_uri(str(entry).strip(), prefix=True)
        a_scheme, a_rest = split_uri(allowed)
        if a_scheme != scheme:
            continue
        if scheme == "qdrant":
            address, _, collection = rest.partition("/")
            a_address, _, a_collection = a_rest.partition("/")
            if address == a_address and a_collection in ("", collection):
                return wanted
        elif all(_inside(path, a_rest) for path in _opened_paths(scheme, rest)):
            return wanted
    raise EmbeddingInputError(f"{uri} is not allowed here; this server opens only URIs under "
                              f"{', '.join(map(str, prefixes))}")


def _opened_paths(scheme: str, rest: str) -> list[str]:
    """The paths a reader of ``scheme://rest`` (canonical) opens: the URI's own, and a LanceDB table's
    ``NAME.lance`` folder resolved too (a link named like the table would lead elsewhere)."""
    return [rest, os.path.realpath(rest + ".lance")] if scheme == "lancedb" else [rest]


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it, component by component (``/data/lancelot`` is not in ``/data/lance``)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
