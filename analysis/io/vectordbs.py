"""Openers for the databases kept in local folders: LanceDB, Chroma and Hugging Face ``datasets``; the dispatch.

Each ``from_*`` function opens a collection read-only through the database's own client and reads it
page by page with :func:`~.databases.read_collection` (see :mod:`~.databases` for the URIs, the
paging guarantees and what "read-only" can and cannot promise for each client).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._core import EmbeddingInputError
from .clients import from_milvus, from_qdrant
from .databases import (
    PAGE_SIZE,
    SCHEMES,
    Collection,
    Page,
    document,
    existing,
    expect_scheme,
    is_uri,
    listing_names,
    locate,
    require,
    split_uri,
    to_set,
    with_payload,
)
from .formats import schema_vector_column
from .tables import listing


# --------------------------------------------------------------------------------------------- LanceDB


@document
def from_lancedb(source, table: str | None = None, *, vectors=None, metadata=None, weights=None, name=None,
                 on_invalid: str = "raise", page_size: int = PAGE_SIZE, progress=None):
    """Read a LanceDB table, in Arrow record batches of ``page_size`` rows.

    Parameters
    ----------
    source : str, os.PathLike or lancedb.table.Table
        ``lancedb://PATH/TABLE``, a database folder (then ``table`` names the table), or an open table.
    table : str, optional
        The table, when ``source`` is a folder.
    {common}
    Examples
    --------
    >>> s = from_lancedb("lancedb://data/lance/docs")  # doctest: +SKIP
    """
    lancedb = require("lancedb", "lancedb")
    if hasattr(source, "count_rows") and hasattr(source, "search"):
        tbl, where = source, f"LanceDB table {getattr(source, 'name', '?')!r}"
    else:
        path, table, where = locate(source, table, scheme="lancedb", what="table", function="from_lancedb",
                                    kind="LanceDB")
        db = lancedb.connect(str(existing(path, "LanceDB database folder", where)))
        names = _lance_tables(db)
        if table not in names:
            raise EmbeddingInputError(f"{where}: no table {table!r}; the database at {path} has tables "
                                      f"{listing_names(names)}")
        tbl = db.open_table(table)
    schema = tbl.schema
    col = schema_vector_column(schema, vectors)
    if col is None:
        raise EmbeddingInputError(f"{where}: no list column of vectors; columns are {listing(schema.names)}")
    t = schema.field(col).type
    n, keep = tbl.count_rows(), [c for c in schema.names if c != col]

    def pages(size):
        import pyarrow as pa

        for batch in tbl.search().limit(max(n, 1)).to_batches(size):
            part = pa.Table.from_batches([batch])
            yield Page(part.column(col), part.select(keep).to_pandas() if keep else None)

    c = Collection(where, str(getattr(tbl, "name", "lancedb")), n, pages, vector_name=col,
                   id_column="id" if "id" in keep else None, dim=getattr(t, "list_size", None))
    return to_set(c, vectors=vectors, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid,
                  page_size=page_size, progress=progress)


def _lance_tables(db) -> list[str]:
    if hasattr(db, "list_tables"):
        found = db.list_tables()
        tables = getattr(found, "tables", None)
        if tables is None and not isinstance(found, list):
            tables = dict(found).get("tables")
        return list(tables if tables is not None else found)
    return list(db.table_names())


# --------------------------------------------------------------------------------------------- Chroma


@document
def from_chroma(source, collection: str | None = None, *, vectors=None, metadata=None, weights=None, name=None,
                on_invalid: str = "raise", page_size: int = PAGE_SIZE, progress=None):
    """Read a Chroma collection with ``collection.get(limit=page_size, offset=...)``.

    Documents become a ``document`` column and each metadata key a column; the ids an ``id`` column.

    Parameters
    ----------
    source : str, os.PathLike or chromadb Collection
        ``chroma://PATH/COLLECTION`` (a ``PersistentClient`` folder), a folder (then ``collection`` names
        the collection), or a collection object.
    collection : str, optional
        The collection, when ``source`` is a folder.
    {common}
    """
    chromadb = require("chromadb", "chroma")
    if vectors is not None:
        raise EmbeddingInputError("a Chroma collection holds one embedding per id; vectors= does not apply")
    if hasattr(source, "get") and hasattr(source, "count") and hasattr(source, "name") and not is_uri(source):
        col, where = source, f"Chroma collection {source.name!r}"
    else:
        path, collection, where = locate(source, collection, scheme="chroma", what="collection",
                                         function="from_chroma", kind="Chroma")
        existing(path, "Chroma persistent folder", where)
        if not (path / "chroma.sqlite3").is_file():
            raise EmbeddingInputError(f"{where}: {path} is not a Chroma persistent folder (it has no chroma.sqlite3)")
        client = _chroma_client(chromadb, path, where)
        names = [getattr(c, "name", c) for c in client.list_collections()]
        if collection not in names:
            raise EmbeddingInputError(f"{where}: no collection {collection!r}; {path} has collections "
                                      f"{listing_names(names)}")
        col = client.get_collection(collection)

    def pages(size):
        offset = 0
        while True:
            got = col.get(limit=size, offset=offset, include=["embeddings", "metadatas", "documents"])
            ids = list(got["ids"])
            if not ids:
                return
            frame = pd.DataFrame({"id": ids})
            docs = got.get("documents")
            if docs is not None and any(d is not None for d in docs):
                frame["document"] = docs
            frame = with_payload(frame, got.get("metadatas"))
            yield Page(got["embeddings"], frame)
            offset += len(ids)
            if len(ids) < size:
                return

    c = Collection(where, col.name, col.count(), pages, vector_name="embedding")
    return to_set(c, vectors=None, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid,
                  page_size=page_size, progress=progress)


#: Chroma settings for reading: no telemetry, and migrations only *validated*. Chroma's default
#: ("apply") upgrades a folder written by an older Chroma in place, irreversibly, on opening.
CHROMA_SETTINGS = {"anonymized_telemetry": False, "migrations": "validate"}


def _chroma_client(chromadb, path: Path, where: str):
    """A ``PersistentClient`` on ``path`` that never migrates the folder.

    When this process already has the folder open with other settings (Chroma keeps one system per
    folder and refuses a second with different settings), that open system is reused as it is: it was
    started (and any migration run) by whoever opened it, and reusing it starts nothing.
    """
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import Settings

    systems = SharedSystemClient._identifier_to_system
    before = set(systems)
    try:
        return chromadb.PersistentClient(path=str(path), settings=Settings(**CHROMA_SETTINGS))
    except ValueError as exc:  # this process already opened the folder with other settings: reuse that system
        system = systems.get(str(path))
        if system is None:
            raise EmbeddingInputError(f"{where}: Chroma could not open the folder ({exc}); if this process has it "
                                      "open already, pass the collection object instead") from None
        return chromadb.PersistentClient(path=str(path), settings=system.settings)
    except Exception as exc:
        for identifier in set(systems) - before:  # Chroma caches the system before starting it: drop ours
            systems.pop(identifier, None)
        if "migration" not in str(exc).lower():
            raise
        raise EmbeddingInputError(
            f"{where}: the folder was written by another Chroma version and needs a migration ({exc}); "
            f"embgeo reads it without changing it, so it is not upgraded (chromadb {chromadb.__version__} would "
            "upgrade it in place, irreversibly). Open a copy of the folder with chromadb.PersistentClient to "
            "upgrade the copy, or read it with the Chroma version that wrote it") from None


# --------------------------------------------------------------------------------------------- datasets


@document
def from_hf(source, *, split: str | None = None, vectors=None, metadata=None, weights=None, name=None,
            on_invalid: str = "raise", page_size: int = PAGE_SIZE, progress=None):
    """Read a Hugging Face dataset saved with ``save_to_disk`` (memory-mapped Arrow), in Arrow batches.

    Parameters
    ----------
    source : str, os.PathLike, datasets.Dataset or datasets.DatasetDict
        ``hf://PATH``, the folder, or the dataset itself.
    split : str, optional
        The split of a ``DatasetDict`` (needed when it has more than one; ``hf://PATH/SPLIT`` also works).
    {common}
    """
    datasets = require("datasets", "hf")
    if isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        ds, where = source, f"dataset {getattr(source, 'info', None) and source.info.dataset_name or 'in memory'}"
        default = "dataset"
    else:
        if is_uri(source):
            expect_scheme(source, ("hf",), "from_hf")
            path, where = Path(split_uri(source)[1]), source
        else:
            path = Path(source)
            where = str(path)
        existing(path, "saved dataset folder", where)
        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError, IndexError) as exc:
            if _saved_empty(path):  # datasets itself fails on a saved dataset of no shards
                raise EmbeddingInputError(f"{where} is empty (0 rows): there is nothing to analyse") from None
            raise EmbeddingInputError(f"{where}: not a dataset saved with save_to_disk "
                                      f"({type(exc).__name__}: {exc})") from None
        default = path.name
    if isinstance(ds, datasets.DatasetDict):
        if split is None and len(ds) != 1:
            raise EmbeddingInputError(f"{where}: the dataset has splits {listing_names(ds)}; choose one with "
                                      "split= (or hf://PATH/SPLIT)")
        split = split if split is not None else next(iter(ds))
        if split not in ds:
            raise EmbeddingInputError(f"{where}: no split {split!r}; the dataset has {listing_names(ds)}")
        ds, default = ds[split], f"{default}[{split}]"
    elif split is not None:
        raise EmbeddingInputError(f"{where}: the dataset has no splits; split= does not apply")
    schema = ds.features.arrow_schema
    col = schema_vector_column(schema, vectors)
    if col is None:
        raise EmbeddingInputError(f"{where}: no list column of vectors; columns are {listing(schema.names)}")
    keep = [c for c in schema.names if c != col]

    def pages(size):
        for part in ds.with_format("arrow").iter(batch_size=size):
            yield Page(part.column(col), part.select(keep).to_pandas() if keep else None)

    c = Collection(where, default, ds.num_rows, pages, vector_name=col, id_column="id" if "id" in keep else None,
                   dim=getattr(schema.field(col).type, "list_size", None))
    return to_set(c, vectors=vectors, metadata=metadata, weights=weights, name=name, on_invalid=on_invalid,
                  page_size=page_size, progress=progress)


def _saved_empty(path: Path) -> bool:
    import json

    try:
        return json.loads((path / "state.json").read_text()).get("_data_files") == []
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------- dispatch

FROM = {"from_lancedb": from_lancedb, "from_chroma": from_chroma, "from_qdrant": from_qdrant,
        "from_milvus": from_milvus, "from_hf": from_hf}
#: Top-level modules of the objects :func:`load_database_object` takes.
DATABASE_MODULES = {"lancedb": "from_lancedb", "chromadb": "from_chroma", "datasets": "from_hf",
                    "qdrant_client": "from_qdrant", "pymilvus": "from_milvus"}


def load_uri(uri: str, **kwargs):
    """``load(uri)``: the ``from_*`` function of the URI's scheme."""
    scheme, _ = split_uri(uri)
    return FROM[SCHEMES[scheme][0]](uri, **kwargs)


def is_database_object(obj) -> bool:
    return type(obj).__module__.split(".")[0] in DATABASE_MODULES


def load_database_object(obj, **kwargs):
    """``load(table)``: a LanceDB table, a Chroma collection or a dataset; a client needs a collection name."""
    function = DATABASE_MODULES[type(obj).__module__.split(".")[0]]
    if function in ("from_qdrant", "from_milvus"):
        raise EmbeddingInputError(f"a {type(obj).__name__} serves many collections; name one: "
                                  f"embgeo.analysis.io.{function}(client, 'collection')")
    return FROM[function](obj, **kwargs)
