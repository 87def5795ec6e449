"""Openers for the databases reached through a client: Qdrant (a server, or its local mode) and Milvus Lite.

See :mod:`~.databases` for the URIs and the paging guarantees.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pandas as pd

from .._core import EmbeddingInputError
from .databases import (
    PAGE_SIZE,
    Collection,
    Page,
    document,
    existing,
    expect_scheme,
    is_uri,
    listing_names,
    locate,
    needs_name,
    path_and_name,
    require,
    split_uri,
    to_set,
    with_payload,
)


# --------------------------------------------------------------------------------------------- Qdrant


@document
def from_qdrant(source, collection: str | None = None, *, vectors=None, metadata=None, weights=None, name=None,
                on_invalid: str = "raise", page_size: int = PAGE_SIZE, progress=None):
    """Read a Qdrant collection with ``scroll`` (its own cursor), ``page_size`` points at a time.

    The point ids become an ``id`` column and each payload key a column.

    Parameters
    ----------
    source : str, os.PathLike or qdrant_client.QdrantClient
        ``qdrant+local://PATH/COLLECTION`` (local mode's storage folder), ``qdrant://HOST:PORT/COLLECTION``
        (a server), a local-mode folder, or a client (then ``collection`` names the collection; the
        client is left open).
    collection : str, optional
        The collection, when ``source`` is a folder or a client.
    {common}
    """
    qdrant = require("qdrant_client", "qdrant")
    own = True
    if hasattr(source, "scroll") and hasattr(source, "get_collection"):
        client, own = source, False
        collection = needs_name(collection, "collection", "from_qdrant")
        where = f"Qdrant collection {collection!r}"
    elif is_uri(source):
        scheme = expect_scheme(source, ("qdrant", "qdrant+local"), "from_qdrant")
        if scheme == "qdrant":
            client, collection = _qdrant_server(qdrant, source)
        else:
            path, collection = path_and_name(source, "COLLECTION")
            client = _qdrant_local(qdrant, path, source)
        where = source
    else:
        path, collection = Path(source), needs_name(collection, "collection", "from_qdrant")
        where = f"Qdrant collection {collection!r} in {path}"
        client = _qdrant_local(qdrant, path, where)
    try:
        using, dim, n = _qdrant_vectors(client, collection, vectors, where)
    except BaseException:
        if own:
            client.close()
        raise

    def pages(size):
        offset = None
        while True:
            points, offset = client.scroll(collection, limit=size, offset=offset, with_payload=True,
                                           with_vectors=[using] if using else True)
            if not points:
                return
            vecs = [p.vector if not using else (p.vector or {}).get(using) for p in points]
            frame = with_payload(pd.DataFrame({"id": [p.id for p in points]}), [p.payload for p in points])
            yield Page(vecs, frame)
            if offset is None:
                return

    c = Collection(where, collection, n, pages, vector_name=using or "vector", dim=dim,
                   close=client.close if own else (lambda: None))
    return to_set(c, vectors=vectors, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid,
                  page_size=page_size, progress=progress)


def _qdrant_server(qdrant, uri: str):
    _, rest = split_uri(uri)
    address, _, collection = rest.rstrip("/").partition("/")
    host, _, port = address.partition(":")
    if not host or not collection or "/" in collection or (port and not port.isdigit()):
        raise EmbeddingInputError(f"{uri}: expected qdrant://HOST:PORT/COLLECTION, e.g. qdrant://localhost:6333/docs")
    return qdrant.QdrantClient(host=host, port=int(port or 6333), timeout=30, check_compatibility=False), collection


def _qdrant_local(qdrant, path: Path, where: str):
    existing(path, "Qdrant local storage folder", where)
    try:
        return qdrant.QdrantClient(path=str(path))
    except RuntimeError as exc:  # the folder's lock is held by another client
        raise EmbeddingInputError(f"{where}: {exc}; close that client first, or pass it: "
                                  "from_qdrant(client, 'collection')") from None


def _qdrant_vectors(client, collection: str, vectors, where: str):
    """``(vector name or None, dimension, exact point count)``, or a clear error."""
    try:
        found = client.collection_exists(collection)
        names = [] if found else [c.name for c in client.get_collections().collections]
    except Exception as exc:  # the server's transport errors have no common base class
        raise EmbeddingInputError(f"{where}: cannot reach the Qdrant server: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())}") from None
    if not found:
        raise EmbeddingInputError(f"{where}: no collection {collection!r}; there are {listing_names(names)}")
    params = client.get_collection(collection).config.params.vectors
    if isinstance(params, dict):
        if vectors is None and len(params) != 1:
            raise EmbeddingInputError(f"{where}: the collection has named vectors {listing_names(params)}; "
                                      "choose one with vectors=")
        using = vectors if vectors is not None else next(iter(params))
        if using not in params:
            raise EmbeddingInputError(f"{where}: no vector {using!r}; the collection has {listing_names(params)}")
        params = params[using]
    else:
        if vectors not in (None, ""):
            raise EmbeddingInputError(f"{where}: the collection has one unnamed vector; vectors= does not apply")
        using = None
    if getattr(params, "multivector_config", None) is not None:
        raise EmbeddingInputError(f"{where}: vector {using or ''!r} is a multi-vector (one matrix per point), "
                                  "not one embedding per point")
    return using, int(params.size), int(client.count(collection, exact=True).count)


# --------------------------------------------------------------------------------------------- Milvus


@document
def from_milvus(source, collection: str | None = None, *, vectors=None, metadata=None, weights=None, name=None,
                on_invalid: str = "raise", page_size: int = PAGE_SIZE, progress=None):
    """Read a Milvus (Lite) collection with ``query_iterator``, ``page_size`` rows at a time.

    The primary key and every scalar and dynamic field become metadata columns.

    Parameters
    ----------
    source : str, os.PathLike or pymilvus.MilvusClient
        ``milvus://FILE.db/COLLECTION``, a Milvus Lite file, or a client (then ``collection`` names the
        collection; the client is left open).
    collection : str, optional
        The collection, when ``source`` is a file or a client.
    {common}
    """
    pymilvus = require("pymilvus", "milvus")
    own = not (hasattr(source, "query_iterator") and hasattr(source, "describe_collection"))
    if not own:
        client, collection = source, needs_name(collection, "collection", "from_milvus")
        where = f"Milvus collection {collection!r}"
    else:
        path, collection, where = locate(source, collection, scheme="milvus", what="collection",
                                         function="from_milvus", kind="Milvus")
        existing(path, "Milvus Lite file", where)
        with _quiet():
            client = pymilvus.MilvusClient(str(path))
    release = False
    try:
        with _quiet():
            field, pk, others = _milvus_fields(pymilvus, client, collection, vectors, where)
            if str(client.get_load_state(collection).get("state")).split(".")[-1].rstrip(">") != "Loaded":
                client.load_collection(collection)  # Milvus serves queries only from a loaded collection
                release = True
            n = int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])
    except BaseException:
        _milvus_close(client, collection, release, own)
        raise

    def pages(size):
        with _quiet():
            it = client.query_iterator(collection, batch_size=min(size, 16384), output_fields=["*"])
        try:
            while True:
                with _quiet():
                    rows = it.next()
                if not rows:
                    return
                vecs = [r.pop(field, None) for r in rows]
                frame = pd.DataFrame.from_records([{k: v for k, v in r.items() if k not in others} for r in rows])
                yield Page(vecs, frame[[pk] + [c for c in frame.columns if c != pk]])
        finally:
            it.close()

    c = Collection(where, collection, n, pages, vector_name=field, id_column=pk, dim=_milvus_dim(client, collection,
                   field), close=lambda: _milvus_close(client, collection, release, own))
    return to_set(c, vectors=vectors, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid,
                  page_size=page_size, progress=progress)


@contextlib.contextmanager
def _quiet():
    """pymilvus logs every failed call (with a traceback) and its iterator's fallbacks; the errors that
    matter reach the caller as exceptions."""
    log = logging.getLogger("pymilvus")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _milvus_fields(pymilvus, client, collection: str, vectors, where: str):
    """``(vector field, primary key, the other vector fields)``."""
    if not client.has_collection(collection):
        raise EmbeddingInputError(f"{where}: no collection {collection!r}; there are "
                                  f"{listing_names(client.list_collections())}")
    fields = client.describe_collection(collection)["fields"]
    dt = pymilvus.DataType
    kinds = {dt.FLOAT_VECTOR, dt.FLOAT16_VECTOR, dt.BFLOAT16_VECTOR, dt.BINARY_VECTOR, dt.SPARSE_FLOAT_VECTOR}
    kinds |= {getattr(dt, "INT8_VECTOR")} if hasattr(dt, "INT8_VECTOR") else set()
    vector_fields = {f["name"]: f["type"] for f in fields if f["type"] in kinds}
    dense = [k for k, t in vector_fields.items() if t == dt.FLOAT_VECTOR]
    if vectors is None and len(dense) != 1:
        raise EmbeddingInputError(f"{where}: {'no' if not dense else 'several'} float vector fields "
                                  f"({listing_names(vector_fields)}); choose one with vectors=")
    field = vectors if vectors is not None else dense[0]
    if field not in vector_fields:
        raise EmbeddingInputError(f"{where}: no vector field {field!r}; the collection has {listing_names(vector_fields)}")
    if vector_fields[field] != dt.FLOAT_VECTOR:
        raise EmbeddingInputError(f"{where}: field {field!r} is a {vector_fields[field].name}; embgeo reads "
                                  "FLOAT_VECTOR fields")
    pk = next(f["name"] for f in fields if f.get("is_primary"))
    return field, pk, set(vector_fields) - {field}


def _milvus_dim(client, collection: str, field: str):
    for f in client.describe_collection(collection)["fields"]:
        if f["name"] == field and "dim" in f.get("params", {}):
            return int(f["params"]["dim"])
    return None


def _milvus_close(client, collection: str, release: bool, own: bool) -> None:
    with _quiet():
        if release:
            client.release_collection(collection)  # leave it as we found it
        if own:
            client.close()
