"""A database's own search, one query at a time: what its application sees, for the live-index report.

:func:`open_live_index` opens the same URIs and objects as the readers (see :mod:`~.databases`) and
returns a :class:`LiveIndex`, whose ``search(vector, k)`` asks the database for its k nearest ids
with the collection's own distance and search settings. It never writes: no index is built or changed.
``count()`` and ``fetch(ids)`` (a few rows' vectors by id) let a set read before stand in for a new
read once it is checked against the collection (``live_index_report(data=)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .._core import EmbeddingInputError
from .clients import from_milvus, from_qdrant
from .databases import existing, is_uri, listing_names, path_and_name, require, split_uri
from .vectordbs import from_chroma, from_lancedb

#: Each database's distance name -> the embgeo metric that orders neighbours the same way.
DISTANCES = {"l2": "euclidean", "euclid": "euclidean", "euclidean": "euclidean", "cosine": "cosine",
             "ip": "dot", "dot": "dot"}


@dataclass
class LiveIndex:
    """A collection's search API: ``search(vector, k, **params) -> ids``, the metric it ranks by, its settings.

    ``params`` names the per-query search parameters the database takes (for a sweep); none for Chroma,
    whose ``ef_search`` is a collection setting (changing it would write to the collection).
    """

    where: str
    database: str
    metric: str
    search: Callable[..., list]
    id_column: str = "id"
    params: tuple = ()
    settings: dict = field(default_factory=dict)
    close: Callable[[], None] = field(default=lambda: None)
    read: Callable[..., Any] | None = None  #: read(progress=...) -> the collection as an EmbeddingSet
    count: Callable[[], int] | None = None  #: the collection's row count now
    fetch: Callable[[list], list] | None = None  #: fetch(ids) -> their vectors in that order (None: not held)


def _in_order(asked, ids, vectors) -> list:
    """The vectors a database returned (``ids``, in its own order) lined up with the ``asked`` ids."""
    held = {_plain_id(i): np.asarray(v, dtype=np.float32) for i, v in zip(ids, vectors) if v is not None}
    return [held.get(_plain_id(i)) for i in asked]


def _plain_id(value):
    """An id as a plain Python value (NumPy scalars from a DataFrame column compare and hash as their value)."""
    return value.item() if isinstance(value, np.generic) else value


def _sql_literal(value) -> str:
    """An id as a LanceDB (DataFusion SQL) literal: an integer, or a quoted string."""
    value = _plain_id(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EmbeddingInputError(f"ids of type {type(value).__name__} cannot be looked up in LanceDB")
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _metric(name, database: str, where: str) -> str:
    metric = DISTANCES.get(str(name).lower().split(".")[-1])
    if metric is None:
        raise EmbeddingInputError(f"{where}: the collection ranks by {name!r} distance, which embgeo's exact search "
                                  "has no metric for (cosine, dot and euclidean are measured)")
    return metric


def open_live_index(source, collection: str | None = None, *, vectors: str | None = None,
                    metric: str | None = None) -> LiveIndex:
    """The search API of the collection ``source`` names (a URI, or a table, collection or client).

    ``metric`` applies to LanceDB only (its distance is chosen per query; default ``"euclidean"``, as
    LanceDB's own default); every other database ranks by the distance its collection was made with.
    """
    module = type(source).__module__.split(".")[0]
    scheme = split_uri(source)[0] if is_uri(source) else None
    if scheme == "lancedb" or module == "lancedb":
        return _lancedb(source, vectors, metric)
    if metric is not None:
        raise EmbeddingInputError("metric= applies to LanceDB only; the other databases rank by the collection's "
                                  "own distance")
    if scheme == "chroma" or module == "chromadb":
        return _chroma(source)
    if scheme in ("qdrant", "qdrant+local") or module == "qdrant_client":
        return _qdrant(source, collection, vectors)
    if scheme == "milvus" or module == "pymilvus":
        return _milvus(source, collection, vectors)
    raise EmbeddingInputError(f"the live-index report searches LanceDB, Chroma, Qdrant and Milvus collections; got "
                              f"{source if isinstance(source, str) else type(source).__name__}")


def _lancedb(source, vectors, metric) -> LiveIndex:
    from .formats import schema_vector_column

    lancedb = require("lancedb", "lancedb")
    if is_uri(source):
        path, name = path_and_name(source, "TABLE")
        tbl, where = lancedb.connect(str(existing(path, "LanceDB database folder", source))).open_table(name), source
    else:
        tbl, where = source, f"LanceDB table {getattr(source, 'name', '?')!r}"
    col = schema_vector_column(tbl.schema, vectors)
    if "id" not in tbl.schema.names:
        raise EmbeddingInputError(f"{where}: the live-index report matches answers by id; the table has no 'id' column")
    indices = [i for i in (tbl.list_indices() if hasattr(tbl, "list_indices") else []) if col in getattr(i, "columns", [])]
    indexed = next((str((getattr(i, "index_details", None) or {}).get("metric_type", "")) for i in indices), "")
    metric = metric or (_metric(indexed, "lancedb", where) if indexed else "euclidean")
    distance = {"euclidean": "l2", "cosine": "cosine", "dot": "dot"}[metric]

    def search(q, k, **params):
        query = tbl.search(q, vector_column_name=col).distance_type(distance).limit(k)
        for name, value in params.items():  # nprobes, ef, refine_factor: the builder's own methods
            query = getattr(query, name)(value)
        return query.select(["id"]).to_arrow().column("id").to_pylist()

    def fetch(ids):
        found = (tbl.search().where(f"id IN ({', '.join(_sql_literal(i) for i in ids)})").select(["id", col])
                 .limit(len(ids)).to_arrow())
        return _in_order(ids, found.column("id").to_pylist(), found.column(col).to_pylist())

    kinds = ", ".join(f"{getattr(i, 'name', '?')}: {getattr(i, 'index_type', '?')}" for i in indices)
    return LiveIndex(where, "lancedb", metric, search, settings={"indices": kinds or "none (flat search)"},
                     params=("nprobes", "ef", "refine_factor"),
                     read=lambda progress=None: from_lancedb(tbl, vectors=col, progress=progress),
                     count=tbl.count_rows, fetch=fetch)


def _chroma(source) -> LiveIndex:
    from .vectordbs import _chroma_client

    chromadb = require("chromadb", "chroma")
    if is_uri(source):
        path, name = path_and_name(source, "COLLECTION")
        client = _chroma_client(chromadb, existing(path, "Chroma persistent folder", source), source)
        names = [getattr(c, "name", c) for c in client.list_collections()]
        if name not in names:
            raise EmbeddingInputError(f"{source}: no collection {name!r}; there are {listing_names(names)}")
        col, where = client.get_collection(name), source
    else:
        col, where = source, f"Chroma collection {source.name!r}"
    hnsw = dict((getattr(col, "configuration", None) or {}).get("hnsw") or {})
    space = hnsw.get("space") or (col.metadata or {}).get("hnsw:space", "l2")

    def search(q, k):
        return list(col.query(query_embeddings=[q], n_results=k, include=[])["ids"][0])

    def fetch(ids):
        found = col.get(ids=[str(_plain_id(i)) for i in ids], include=["embeddings"])
        return _in_order(ids, found["ids"], found["embeddings"])

    return LiveIndex(where, "chroma", _metric(space, "chroma", where), search,
                     settings={k: v for k, v in hnsw.items() if isinstance(v, (int, float, str))},
                     read=lambda progress=None: from_chroma(col, progress=progress), count=col.count, fetch=fetch)


def _qdrant(source, collection, vectors) -> LiveIndex:
    from .clients import _qdrant_local, _qdrant_server, _qdrant_vectors

    qdrant = require("qdrant_client", "qdrant")
    own = not hasattr(source, "query_points")
    if not own:
        client, where = source, f"Qdrant collection {collection!r}"
        if not collection:
            raise EmbeddingInputError("name the collection: live_index_report(client, collection='docs')")
    elif split_uri(source)[0] == "qdrant":
        (client, collection), where = _qdrant_server(qdrant, source), source
    else:
        path, collection = path_and_name(source, "COLLECTION")
        client, where = _qdrant_local(qdrant, path, source), source
    try:
        using, _, _ = _qdrant_vectors(client, collection, vectors, where)
        config = client.get_collection(collection).config
        params = config.params.vectors
        params = params[using] if isinstance(params, dict) else params
        hnsw = config.hnsw_config.model_dump() if getattr(config, "hnsw_config", None) else {}
    except BaseException:
        if own:
            client.close()
        raise

    def search(q, k, **params):
        extra = {"search_params": qdrant.models.SearchParams(**params)} if params else {}
        return [p.id for p in client.query_points(collection, query=np.asarray(q).tolist(), using=using, limit=k,
                                                  with_payload=False, **extra).points]

    def fetch(ids):
        points = client.retrieve(collection, ids=[_plain_id(i) for i in ids], with_payload=False,
                                 with_vectors=[using] if using else True)
        return _in_order(ids, [p.id for p in points], [(p.vector or {}).get(using) if using else p.vector for p in points])

    distance = getattr(params.distance, "value", params.distance)
    return LiveIndex(where, "qdrant", _metric(distance, "qdrant", where), search,
                     settings={k: v for k, v in hnsw.items() if isinstance(v, (int, float, str))},
                     close=client.close if own else (lambda: None), params=("hnsw_ef", "exact"),
                     read=lambda progress=None: from_qdrant(client, collection, vectors=using, progress=progress),
                     count=lambda: client.count(collection, exact=True).count, fetch=fetch)


def _milvus(source, collection, vectors) -> LiveIndex:
    from .clients import _milvus_close, _milvus_fields, _quiet

    pymilvus = require("pymilvus", "milvus")
    own = not hasattr(source, "describe_collection")
    if own:
        path, collection = path_and_name(source, "COLLECTION")
        with _quiet():
            client, where = pymilvus.MilvusClient(str(existing(Path(path), "Milvus Lite file", source))), source
    else:
        client, where = source, f"Milvus collection {collection!r}"
    loaded = True  # until we load it ourselves: nothing to release
    try:
        with _quiet():
            field_name, pk, _ = _milvus_fields(pymilvus, client, collection, vectors, where)
            index = next((client.describe_index(collection, i)
                          for i in client.list_indexes(collection, field_name=field_name)), {})
            state = str(client.get_load_state(collection).get("state"))
            if state.split(".")[-1].rstrip(">") != "Loaded":
                client.load_collection(collection)  # Milvus serves searches only from a loaded collection
                loaded = False
            metric = _metric(index.get("metric_type", "l2"), "milvus", where)
    except BaseException:
        _milvus_close(client, collection, not loaded, own)
        raise

    def search(q, k, **params):
        extra = {"search_params": {"params": params}} if params else {}
        with _quiet():
            hits = client.search(collection, data=[np.asarray(q).tolist()], limit=k, anns_field=field_name,
                                 output_fields=[pk], **extra)
        return [h[pk] for h in hits[0]]  # pymilvus keys each hit by the primary key's own name

    def close():
        _milvus_close(client, collection, not loaded, own)

    def count():
        with _quiet():
            return int(client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def fetch(ids):
        with _quiet():
            rows = client.get(collection, ids=[_plain_id(i) for i in ids], output_fields=[pk, field_name])
        return _in_order(ids, [r[pk] for r in rows], [r[field_name] for r in rows])

    settings: dict[str, Any] = {k: v for k, v in index.items() if isinstance(v, (int, float, str))}
    return LiveIndex(where, "milvus", metric, search, id_column=pk,
                     settings=settings, close=close, params=("ef", "nprobe", "search_list"),
                     read=lambda progress=None: from_milvus(client, collection, vectors=field_name, progress=progress),
                     count=count, fetch=fetch)
