"""Reading embeddings from real vector databases: LanceDB, Chroma, Qdrant (local mode), Milvus Lite and
Hugging Face datasets saved to disk.

Every collection is created here, in a temporary folder, with the database's own client, from rows of the
bundled ``sentences`` sample (all-MiniLM-L6-v2 vectors, their text and module label). The tests read it
back through ``load(uri)`` and the ``from_*`` functions and check, against what went in: the vectors, ids
and metadata (order-independent), that paging covers every row exactly once, the errors, and that the
database is unchanged afterwards (its row count and a checksum of its vectors, read with its own client).
A database's tests are skipped only when its client is not installed (the ``test`` extra installs all).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embgeo import cli
from embgeo.analysis import EmbeddingInputError
from embgeo.analysis.datasets import load_sample
from embgeo.analysis.io import from_chroma, from_hf, from_lancedb, from_milvus, from_qdrant, load

N = 150  # rows per collection: a few pages of PAGE (7), and quick to build in every database
PAGE = 7
MODULES = {"lancedb": "lancedb", "chroma": "chromadb", "qdrant": "qdrant_client", "milvus": "pymilvus",
           "hf": "datasets"}
FROM = {"lancedb": from_lancedb, "chroma": from_chroma, "qdrant": from_qdrant, "milvus": from_milvus,
        "hf": from_hf}


def _needs(db: str):
    if importlib.util.find_spec(MODULES[db]) is None:
        pytest.skip(f"{MODULES[db]} is not installed (pip install 'embgeo[{db}]')")


@pytest.fixture(scope="module")
def rows():
    """N rows of the sentences sample: vectors (float32), text, label; spread over the whole sample."""
    s = load_sample("sentences")
    take = np.linspace(0, s.n - 1, N).astype(int)
    x = np.ascontiguousarray(s.vectors[take], dtype=np.float32)
    return x, list(s.metadata["text"].iloc[take]), list(s.metadata["label"].iloc[take])


# --------------------------------------------------------------------------------------------- builders
# Each writes a collection with the database's own client and returns its URI; ids are each database's
# natural kind (strings, or integers where Qdrant and Milvus require them).


def _ids(db: str):
    return list(range(N)) if db in ("qdrant", "milvus") else [f"s{i:03d}" for i in range(N)]


def make(db: str, root, name: str, x, text, label, ids=None):
    ids = _ids(db)[:len(x)] if ids is None else ids
    root.mkdir(parents=True, exist_ok=True)
    if db == "lancedb":
        import lancedb

        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), x.shape[1])
        table = pa.table({"id": ids, "vector": vec, "text": text, "label": label})
        lancedb.connect(str(root)).create_table(name, data=table)
        return f"lancedb://{root}/{name}"
    if db == "chroma":
        import chromadb

        col = chromadb.PersistentClient(path=str(root)).get_or_create_collection(name)
        if len(x):
            col.add(ids=ids, embeddings=x, documents=text, metadatas=[{"label": b, "text": t} for t, b in zip(text, label)])
        return f"chroma://{root}/{name}"
    if db == "qdrant":
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(root))
        try:  # DOT keeps the vectors as given (a COSINE collection stores them normalised)
            client.create_collection(name, vectors_config=models.VectorParams(size=x.shape[1], distance=models.Distance.DOT))
            if len(x):
                client.upsert(name, points=[models.PointStruct(id=i, vector=v.tolist(), payload={"text": t, "label": b})
                                            for i, v, t, b in zip(ids, x, text, label)])
        finally:
            client.close()  # local mode locks the folder while a client holds it
        return f"qdrant+local://{root}/{name}"
    if db == "milvus":
        from pymilvus import MilvusClient

        path = root / "milvus.db"
        client = MilvusClient(str(path))
        client.create_collection(name, dimension=x.shape[1], metric_type="IP")
        if len(x):
            client.insert(name, [{"id": i, "vector": v.tolist(), "text": t, "label": b}
                                 for i, v, t, b in zip(ids, x, text, label)])
        client.release_collection(name)
        client.close()
        return f"milvus://{path}/{name}"
    if db == "hf":
        import datasets

        folder = root / name
        datasets.Dataset.from_dict({"id": ids, "embedding": list(x), "text": text, "label": label},
                                   features=datasets.Features({"id": datasets.Value("string"),
                                                               "embedding": datasets.Sequence(datasets.Value("float32")),
                                                               "text": datasets.Value("string"),
                                                               "label": datasets.Value("string")})
                                   ).save_to_disk(str(folder))
        return f"hf://{folder}"
    raise AssertionError(db)


def snapshot(db: str, uri: str):
    """(row count, sha256 of the vectors sorted by id), read with the database's own client."""
    scheme, rest = uri.split("://", 1)
    root, _, name = rest.rpartition("/")
    if db == "lancedb":
        import lancedb

        t = lancedb.connect(root).open_table(name).to_arrow()
        ids, vecs = t.column("id").to_pylist(), t.column("vector").to_pylist()
    elif db == "chroma":
        import chromadb

        got = chromadb.PersistentClient(path=root).get_collection(name).get(include=["embeddings"])
        ids, vecs = got["ids"], list(got["embeddings"])
    elif db == "qdrant":
        from qdrant_client import QdrantClient

        client = QdrantClient(path=root)
        try:
            points, _ = client.scroll(name, limit=10 * N + 10, with_vectors=True)
        finally:
            client.close()
        ids, vecs = [p.id for p in points], [p.vector for p in points]
    elif db == "milvus":
        from pymilvus import MilvusClient

        client = MilvusClient(root)
        client.load_collection(name)
        got = client.query(name, filter="", output_fields=["id", "vector"], limit=10 * N + 10)
        client.release_collection(name)
        client.close()
        ids, vecs = [r["id"] for r in got], [r["vector"] for r in got]
    else:
        import datasets

        ds = datasets.load_from_disk(rest)
        ids, vecs = ds["id"], list(ds["embedding"])
    order = np.argsort(np.array(ids, dtype=object).astype(str), kind="stable")
    matrix = np.array([np.asarray(vecs[i], dtype=np.float32) for i in order]) if len(ids) else np.zeros(0)
    return len(ids), hashlib.sha256(matrix.tobytes() + repr(sorted(map(str, ids))).encode()).hexdigest()


@pytest.fixture(scope="module")
def collections(rows, tmp_path_factory):
    """One filled collection per installed database: db -> URI (built on first use)."""
    root, made = tmp_path_factory.mktemp("dbs"), {}

    def get(db):
        _needs(db)
        if db not in made:
            made[db] = make(db, root / db, "docs", *rows)
        return made[db]

    return get


@pytest.fixture
def untouched(collections):
    """``check(db)``: run after the test body; the collection's row count and vector checksum are unchanged."""
    seen = {}

    def watch(db):
        uri = collections(db)
        seen[db] = (uri, snapshot(db, uri))
        return uri

    yield watch
    for db, (uri, before) in seen.items():
        assert snapshot(db, uri) == before, f"{db}: the collection changed"


DBS = list(MODULES)


# --------------------------------------------------------------------------------------------- round trip


def _by_id(s, db):
    """The set's rows ordered as the inserted rows (by id), checking each id is there exactly once."""
    ids = list(s.metadata["id"])
    assert sorted(map(str, ids)) == sorted(map(str, _ids(db)))  # every row exactly once
    position = {str(i): k for k, i in enumerate(ids)}
    return np.array([position[str(i)] for i in _ids(db)])


@pytest.mark.parametrize("db", DBS)
def test_load_uri_gives_back_the_vectors_ids_and_metadata(db, rows, untouched):
    uri = untouched(db)
    x, text, label = rows
    s = load(uri)
    assert (s.n, s.dim, s.source) == (N, x.shape[1], uri)
    order = _by_id(s, db)
    np.testing.assert_array_equal(np.asarray(s.vectors)[order], x)
    assert list(s.metadata["text"].iloc[order]) == text
    assert list(s.metadata["label"].iloc[order]) == label
    if db == "chroma":
        assert list(s.metadata["document"].iloc[order]) == text


@pytest.mark.parametrize("db", DBS)
def test_paging_reads_every_row_exactly_once_in_pages(db, rows, untouched):
    uri = untouched(db)
    calls = []
    s = FROM[db](uri, page_size=PAGE, progress=lambda done, total, what: calls.append((done, total)))
    steps = np.diff([done for done, _ in calls])
    assert calls[0] == (0, N) and calls[-1] == (N, N)
    assert len(steps) >= math.ceil(N / PAGE) and steps.max() <= PAGE and steps.min() >= 1
    order = _by_id(s, db)  # ids unique and complete
    np.testing.assert_array_equal(np.asarray(s.vectors)[order], rows[0])


def _spy_pages(db, monkeypatch):
    """Record each call the reader makes to the database's own paging API: (the size asked, rows returned)."""
    calls = []
    if db == "chroma":
        from chromadb.api.models.Collection import Collection

        real = Collection.get

        def get(self, *args, limit=None, **kwargs):
            got = real(self, *args, limit=limit, **kwargs)
            calls.append((limit, len(got["ids"])))
            return got

        monkeypatch.setattr(Collection, "get", get)
    elif db == "qdrant":
        from qdrant_client import QdrantClient

        real = QdrantClient.scroll

        def scroll(self, *args, limit=None, **kwargs):
            points, offset = real(self, *args, limit=limit, **kwargs)
            calls.append((limit, len(points)))
            return points, offset

        monkeypatch.setattr(QdrantClient, "scroll", scroll)
    elif db == "milvus":
        from pymilvus import MilvusClient

        real = MilvusClient.query_iterator

        def query_iterator(self, *args, batch_size=None, **kwargs):
            it = real(self, *args, batch_size=batch_size, **kwargs)
            step = it.next

            def next_page():
                rows = step()
                calls.append((batch_size, len(rows)))
                return rows

            it.next = next_page
            return it

        monkeypatch.setattr(MilvusClient, "query_iterator", query_iterator)
    elif db == "lancedb":
        from lancedb.query import LanceEmptyQueryBuilder

        real = LanceEmptyQueryBuilder.to_batches

        def to_batches(self, batch_size=None, *args, **kwargs):
            for batch in real(self, batch_size, *args, **kwargs):
                calls.append((batch_size, batch.num_rows))
                yield batch

        monkeypatch.setattr(LanceEmptyQueryBuilder, "to_batches", to_batches)
    else:
        import datasets

        real = datasets.Dataset.iter

        def iter_(self, batch_size, *args, **kwargs):
            for batch in real(self, batch_size, *args, **kwargs):
                calls.append((batch_size, len(batch)))
                yield batch

        monkeypatch.setattr(datasets.Dataset, "iter", iter_)
    return calls


@pytest.mark.parametrize("db", DBS)
def test_each_call_to_the_database_asks_for_one_page(db, untouched, monkeypatch):
    """Not a reader that fetches everything and splits it: every paging call asks for page_size rows."""
    uri = untouched(db)
    calls = _spy_pages(db, monkeypatch)
    assert FROM[db](uri, page_size=PAGE).n == N
    sizes = [size for size, _ in calls]
    got = [rows for _, rows in calls if rows]
    assert set(sizes) == {PAGE}, calls
    assert sum(got) == N and max(got) <= PAGE and len(got) == math.ceil(N / PAGE), calls


@pytest.mark.parametrize("db", DBS)
def test_metadata_names_select_columns(db, untouched):
    uri = untouched(db)
    s = FROM[db](uri, metadata=["label"])
    assert list(s.metadata.columns) == ["label"]
    with pytest.raises(EmbeddingInputError, match="no column 'nope'"):
        FROM[db](uri, metadata=["nope"])


def test_a_weights_column_becomes_the_weights(rows, tmp_path):
    _needs("hf")
    import datasets

    x = rows[0][:30]
    freq = np.arange(1, 31, dtype=np.float64)
    datasets.Dataset.from_dict({"id": [f"s{i}" for i in range(30)], "embedding": list(x), "freq": freq}
                               ).save_to_disk(str(tmp_path / "hf"))
    s = load(f"hf://{tmp_path / 'hf'}", weights="freq")
    np.testing.assert_array_equal(s.weights, freq)
    assert "freq" not in s.metadata.columns


def test_a_cancelled_read_raises_and_leaves_nothing_behind(untouched):
    uri = untouched("lancedb")

    def stop(done, total, what):
        if done >= 2 * PAGE:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        from_lancedb(uri, page_size=PAGE, progress=stop)


def test_objects_and_clients_are_read_too(untouched, collections):
    _needs("lancedb"), _needs("qdrant"), _needs("hf"), _needs("chroma"), _needs("milvus")
    import chromadb
    import datasets
    import lancedb
    from pymilvus import MilvusClient
    from qdrant_client import QdrantClient

    for db in DBS:
        untouched(db)
    root, _, name = collections("lancedb").split("://")[1].rpartition("/")
    assert load(lancedb.connect(root).open_table(name)).n == N
    root, _, name = collections("chroma").split("://")[1].rpartition("/")
    assert load(chromadb.PersistentClient(path=root).get_collection(name)).n == N
    assert load(datasets.load_from_disk(collections("hf").split("://")[1])).n == N
    root, _, name = collections("qdrant").split("://")[1].rpartition("/")
    client = QdrantClient(path=root)
    try:
        assert from_qdrant(client, name, page_size=PAGE).n == N  # a caller's client is left open
        with pytest.raises(EmbeddingInputError, match=r"name one: embgeo.analysis.io.from_qdrant\(client"):
            load(client)
        assert client.count(name).count == N
    finally:
        client.close()
    root, _, name = collections("milvus").split("://")[1].rpartition("/")
    client = MilvusClient(root)
    try:
        assert from_milvus(client, name).n == N
        assert str(client.get_load_state(name)["state"]).endswith("NotLoad")  # released again, as it was
    finally:
        client.close()


def _files(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("db", ["lancedb", "qdrant", "hf"])
def test_folder_databases_stay_byte_for_byte_the_same(db, collections):
    """Chroma and Milvus Lite write index files of their own on opening (see embgeo.analysis.io.databases)."""
    uri = collections(db)
    rest = uri.split("://", 1)[1]
    root = Path(rest if db == "hf" else rest.rpartition("/")[0])
    before = _files(root)
    FROM[db](uri, page_size=PAGE)
    assert _files(root) == before


def _chroma_in_another_process(root, x):
    """A Chroma folder written by another process (so this one holds no open system for it)."""
    import subprocess

    np.save(root.parent / "x.npy", x)
    code = ("import sys, numpy as np, chromadb; c = chromadb.PersistentClient(path=sys.argv[1]);"
            "x = np.load(sys.argv[2]); c.create_collection('docs').add(ids=[f's{i}' for i in range(len(x))], embeddings=x)")
    subprocess.run([sys.executable, "-c", code, str(root), str(root.parent / "x.npy")], check=True, timeout=120)


def _migrations(root):
    import sqlite3

    with sqlite3.connect(root / "chroma.sqlite3") as db:
        return db.execute("SELECT dir, version FROM migrations ORDER BY dir, version").fetchall()


@pytest.fixture
def chroma_settings(monkeypatch):
    """The settings every chromadb.PersistentClient call is given."""
    _needs("chroma")
    import chromadb

    seen, real = [], chromadb.PersistentClient

    def spy(*args, settings=None, **kwargs):
        seen.append(settings)
        return real(*args, settings=settings, **kwargs) if settings is not None else real(*args, **kwargs)

    monkeypatch.setattr(chromadb, "PersistentClient", spy)
    return seen


def test_a_chroma_folder_is_opened_with_migrations_validated_only(rows, tmp_path, chroma_settings):
    root = tmp_path / "c"
    _chroma_in_another_process(root, rows[0][:20])
    assert from_chroma(f"chroma://{root}/docs").n == 20
    assert [(s.migrations, s.anonymized_telemetry) for s in chroma_settings] == [("validate", False)]


def test_a_chroma_folder_needing_a_migration_is_refused_and_not_upgraded(rows, tmp_path, chroma_settings):
    """An older Chroma's folder lacks the newest migrations; Chroma's default would apply them in place."""
    import sqlite3

    root = tmp_path / "c"
    _chroma_in_another_process(root, rows[0][:20])
    with sqlite3.connect(root / "chroma.sqlite3") as db:  # as if written before the newest sysdb migration
        db.execute("DELETE FROM migrations WHERE dir = 'sysdb' AND version = (SELECT max(version) FROM migrations "
                   "WHERE dir = 'sysdb')")
    before = _migrations(root)
    for _ in range(2):  # the half-started system is not left cached: the second try is refused the same way
        with pytest.raises(EmbeddingInputError, match=r"needs a migration.*not upgraded"):
            from_chroma(f"chroma://{root}/docs")
    assert _migrations(root) == before
    assert {s.migrations for s in chroma_settings} == {"validate"}


def test_a_chroma_folder_this_process_has_open_reuses_that_system(collections, chroma_settings):
    """The fallback starts nothing: it takes the settings of the system already open on the folder."""
    from chromadb.api.shared_system_client import SharedSystemClient

    uri = collections("chroma")  # written in this process with Chroma's default settings
    root = uri.split("://", 1)[1].rpartition("/")[0]
    systems = dict(SharedSystemClient._identifier_to_system)
    chroma_settings.clear()
    assert from_chroma(uri).n == N
    assert chroma_settings[0].migrations == "validate"
    assert all(s is systems[root].settings for s in chroma_settings[1:])
    assert dict(SharedSystemClient._identifier_to_system) == systems  # no new system was started


# --------------------------------------------------------------------------------------------- errors


def test_a_bad_scheme_and_a_malformed_uri_are_refused():
    with pytest.raises(EmbeddingInputError, match=r"unknown URI scheme 's3://'.*lancedb://, chroma://"):
        load("s3://bucket/docs")
    with pytest.raises(EmbeddingInputError, match=r"expected lancedb://PATH/TABLE"):
        load("lancedb://docs")
    with pytest.raises(EmbeddingInputError, match=r"from_chroma reads chroma:// URIs; use from_lancedb"):
        from_chroma("lancedb://a/b")


@pytest.mark.parametrize("db", DBS)
def test_a_missing_collection_names_those_there_are(db, untouched):
    uri = untouched(db)
    missing = uri[:-len("docs")] + "nope" if db != "hf" else uri + "-nope"
    if db == "hf":
        with pytest.raises(FileNotFoundError, match="no such saved dataset folder"):
            load(missing)
    else:
        with pytest.raises(EmbeddingInputError, match=r"no (table|collection) 'nope'.*\['docs'\]"):
            load(missing)


@pytest.mark.parametrize("db", DBS)
def test_a_missing_database_folder_is_an_error_and_is_not_created(db, tmp_path):
    _needs(db)
    gone = tmp_path / "gone"
    uri = {"lancedb": f"lancedb://{gone}/docs", "chroma": f"chroma://{gone}/docs",
           "qdrant": f"qdrant+local://{gone}/docs", "milvus": f"milvus://{gone}.db/docs", "hf": f"hf://{gone}"}[db]
    with pytest.raises(FileNotFoundError, match="nothing was created"):
        load(uri)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("db", DBS)
def test_an_empty_collection_is_refused(db, rows, tmp_path):
    _needs(db)
    x, text, label = rows
    uri = make(db, tmp_path / db, "empty", x[:0], [], [], ids=[])
    with pytest.raises(EmbeddingInputError, match=r"is empty \(0 rows\)"):
        load(uri)


def test_null_vectors_are_refused_naming_the_row(rows, tmp_path):
    _needs("lancedb"), _needs("hf"), _needs("qdrant")
    import datasets
    import lancedb
    from qdrant_client import QdrantClient, models

    x = rows[0][:20]
    ids = [f"s{i}" for i in range(20)]
    vec = pa.array([None if i == 13 else list(map(float, v)) for i, v in enumerate(x)], pa.list_(pa.float32(), 384))
    lancedb.connect(str(tmp_path / "l")).create_table("t", data=pa.table({"id": ids, "vector": vec}),
                                                      on_bad_vectors="null")  # as written, nulls and all
    with pytest.raises(EmbeddingInputError, match=r"no vector \(null 'vector'\), first row 13 \(id 's13'\)"):
        load(f"lancedb://{tmp_path / 'l'}/t", )
    datasets.Dataset.from_dict({"id": ids, "embedding": [None if i == 13 else v for i, v in enumerate(x.tolist())]}
                               ).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(EmbeddingInputError, match=r"null 'embedding'\), first row 13 \(id 's13'\)"):
        load(f"hf://{tmp_path / 'hf'}")
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("c", vectors_config={"text": models.VectorParams(size=384, distance=models.Distance.DOT),
                                                  "title": models.VectorParams(size=4, distance=models.Distance.DOT)})
    client.upsert("c", points=[models.PointStruct(id=i, vector={} if i == 13 else {"text": v.tolist(), "title": [1.0] * 4})
                               for i, v in enumerate(x)])
    with pytest.raises(EmbeddingInputError, match=r"named vectors \['text', 'title'\]; choose one"):
        from_qdrant(client, "c")
    with pytest.raises(EmbeddingInputError, match=r"null 'text'\), first row 13 \(id 13\)"):
        from_qdrant(client, "c", vectors="text", page_size=PAGE)
    client.close()


def test_vectors_of_another_dimension_are_refused(rows, tmp_path, untouched):
    """LanceDB, Chroma, Qdrant and Milvus enforce one dimension per column; a dataset's list column does not."""
    _needs("hf")
    import datasets

    x = rows[0][:20].tolist()
    x[11] = x[11][:100]
    ids = [f"s{i}" for i in range(20)]
    datasets.Dataset.from_dict({"id": ids, "embedding": x}).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(EmbeddingInputError, match=r"row 11 \(id 's11'\) has 100 values, but row 0 \(id 's0'\) has 384"):
        from_hf(f"hf://{tmp_path / 'hf'}")
    with pytest.raises(EmbeddingInputError, match=r"'embedding' of row 14 \(id 's14'\) has 100 values, but the rows "
                                                  r"before it have 384"):
        x[11], x[14] = rows[0][11].tolist(), x[11]
        datasets.Dataset.from_dict({"id": ids, "embedding": x}).save_to_disk(str(tmp_path / "hf2"))
        from_hf(f"hf://{tmp_path / 'hf2'}", page_size=PAGE)  # found on the third page
    uri = untouched("lancedb")
    with pytest.raises(EmbeddingInputError, match=r"no list column of vectors"):
        from_lancedb(uri, vectors="text")


@pytest.mark.parametrize("db", DBS)
def test_a_missing_client_names_the_extra(db, monkeypatch):
    monkeypatch.setitem(sys.modules, MODULES[db], None)  # as if not installed
    uri = {"lancedb": "lancedb://x/t", "chroma": "chroma://x/c", "qdrant": "qdrant+local://x/c",
           "milvus": "milvus://x.db/c", "hf": "hf://x"}[db]
    with pytest.raises(EmbeddingInputError, match=rf"pip install 'embgeo\[{db}\]'"):
        load(uri)


def test_an_unreachable_qdrant_server_is_a_clear_error():
    _needs("qdrant")
    import socket

    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EmbeddingInputError, match=rf"qdrant://127.0.0.1:{port}/docs: cannot reach the Qdrant server"):
        load(f"qdrant://127.0.0.1:{port}/docs")
    with pytest.raises(EmbeddingInputError, match="expected qdrant://HOST:PORT/COLLECTION"):
        load("qdrant://localhost:port/docs")


# --------------------------------------------------------------------------------------------- the CLI


def test_cli_report_reads_a_uri(untouched, capsys, tmp_path):
    uri = untouched("lancedb")
    out = tmp_path / "r.json"
    assert cli.main(["report", uri, "--k", "5", "--sample", "50", "--json", str(out)]) == 0
    assert "GeometryReport" in capsys.readouterr().out
    assert '"n": 150' in out.read_text()
    assert cli.main(["report", uri[:-len("docs")] + "nope"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("embgeo: error: lancedb://") and "no table 'nope'" in err and err.count("\n") == 1
    assert cli.main(["report", "s3://bucket/x"]) == cli.EXIT_BAD_INPUT


def test_cli_transform_reads_a_uri_and_writes_its_metadata(untouched, rows, tmp_path, capsys):
    uri = untouched("chroma")
    out = tmp_path / "centred.npz"
    assert cli.main(["transform", uri, str(out), "--method", "center"]) == 0, capsys.readouterr().err
    s = load(out)
    order = _by_id(s, "chroma")
    x = rows[0].astype(np.float64)
    np.testing.assert_allclose(np.asarray(s.vectors)[order], x - x.mean(axis=0), atol=1e-6)
    assert list(s.metadata["label"].iloc[order]) == rows[2]
