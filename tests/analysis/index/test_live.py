"""live_index_report against real databases: its recall equals an independent computation.

Each collection is made here with the database's own client. The independent answer: exact neighbours by a
direct NumPy formula (argsort of every distance), the database's answers asked again through its own
client, and the set overlap counted in Python. A Chroma collection built with a deliberately tiny HNSW
(``ef_search=3``, 4 links) gives a recall well below 1, so the comparison has something to find.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from embgeo import cli
from embgeo.analysis import EmbeddingInputError, live_index_report

N, D, K = 600, 16, 10


def _needs(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the test extra installs it)")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((30, D)).astype(np.float32)


def _exact(x, q, k, metric, exclude=None):
    """Top-k rows by a direct formula (no embgeo code): every distance, argsort."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "euclidean":
        score = -((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    elif metric == "cosine":
        score = (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).T
    else:
        score = q64 @ x64.T
    if exclude is not None:
        score[np.arange(len(q)), exclude] = -np.inf
    return np.argsort(-score, axis=1, kind="stable")[:, :k]


def _recall(answers, truth):
    """Id overlap, counted in Python."""
    return np.array([len(set(a) & set(t)) / truth.shape[1] for a, t in zip(answers, truth)])


def _distance(x, v, metric):
    """Distances of one query v to rows x by a direct float64 formula (cosine: the chord of unit vectors)."""
    x64, v64 = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if metric == "cosine":
        x64, v64 = x64 / np.linalg.norm(x64, axis=-1, keepdims=True), v64 / np.linalg.norm(v64)
    return -(x64 @ v64) if metric == "dot" else np.sqrt(((x64 - v64) ** 2).sum(-1))


def _recall_by_distance(x, q, answers, truth, metric):
    """ANN-Benchmarks' rule, looped in Python: an answer within the exact k-th distance x 1.001 is a hit."""
    out = []
    for v, a, t in zip(q, answers, truth):
        kth = _distance(x[t[-1]], v, metric)
        a = [i for i in a if i >= 0]
        out.append(sum(d <= kth + 1e-3 * abs(kth) for d in _distance(x[a], v, metric)) / truth.shape[1] if a else 0.0)
    return np.array(out)


@pytest.fixture(scope="module")
def low_chroma(data, tmp_path_factory):
    _needs("chromadb")
    import chromadb

    root = tmp_path_factory.mktemp("chroma")
    col = chromadb.PersistentClient(path=str(root)).create_collection(
        "low", configuration={"hnsw": {"space": "l2", "ef_search": 3, "max_neighbors": 4, "ef_construction": 8}})
    col.add(ids=[f"r{i}" for i in range(N)], embeddings=data[0])
    return f"chroma://{root}/low", col


def test_recall_of_a_poorly_tuned_hnsw_equals_an_independent_count(data, low_chroma):
    x, q = data
    uri, col = low_chroma
    r = live_index_report(uri, queries=q, k=K)
    truth = _exact(x, q, K, "euclidean")
    answers = [[int(i[1:]) for i in col.query(query_embeddings=[v], n_results=K, include=[])["ids"][0]] for v in q]
    expected = _recall_by_distance(x, q, answers, truth, "euclidean")
    np.testing.assert_array_equal(np.sort(r.truth, axis=1), np.sort(truth, axis=1))
    np.testing.assert_allclose(r.recall_per_query, expected)
    np.testing.assert_allclose(r.recall_per_query_ids, _recall(answers, truth))
    assert r.recall_at_k_ids == pytest.approx(_recall(answers, truth).mean())
    assert r.recall_at_k == pytest.approx(expected.mean()) and r.recall_at_k < 0.9  # the tiny HNSW misses
    assert (r.database, r.metric, r.n, r.n_queries, r.query_source) == ("chroma", "euclidean", N, len(q), "array")
    assert r.settings["ef_search"] == 3
    assert r.never_returned_rate == pytest.approx(1 - len({i for a in answers for i in a}) / N)
    assert r.reachability.never_retrieved_rate == pytest.approx(1 - len(set(truth.ravel())) / N)
    buckets = r.difficulty.recall_by_bucket  # the queries' LID quartiles cover them all, recall by bucket
    assert sum(b["n_queries"] for b in buckets) == len(q)
    assert sum(b["n_queries"] * b["recall"]["chroma"] for b in buckets) / len(q) == pytest.approx(expected.mean())
    assert 0 < r.latency_ms_p50 <= r.latency_ms_p95 <= r.latency_ms_p99 and r.qps > 0
    assert r.qps == pytest.approx(len(q) / (r.latencies_ms.sum() / 1e3))
    json.dumps(r.to_dict(), allow_nan=False)


def test_held_out_rows_leave_their_own_id_out_of_both_lists(data, tmp_path):
    _needs("qdrant_client")
    from qdrant_client import QdrantClient, models

    x, _ = data
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        client.create_collection("docs", vectors_config=models.VectorParams(size=D, distance=models.Distance.COSINE))
        client.upsert("docs", points=[models.PointStruct(id=i, vector=v.tolist()) for i, v in enumerate(x)])
        r = live_index_report(client, collection="docs", k=K, n_queries=25, random_state=3)
        rows = r.query_rows
        truth = _exact(x, x[rows], K, "cosine", exclude=rows)
        answers = [[p.id for p in client.query_points("docs", query=x[i].tolist(), limit=K + 1).points if p.id != i][:K]
                   for i in rows]
    finally:
        client.close()
    assert len(rows) == 25 and len(set(rows.tolist())) == 25 and r.query_source == "held-out(25)"
    assert all(rows[i] not in r.truth[i] and rows[i] not in r.found[i] for i in range(25))
    np.testing.assert_array_equal(np.sort(r.truth, axis=1), np.sort(truth, axis=1))
    np.testing.assert_allclose(r.recall_per_query, _recall_by_distance(x, x[rows], answers, truth, "cosine"))
    np.testing.assert_allclose(r.recall_per_query_ids, _recall(answers, truth))
    assert r.metric == "cosine"


@pytest.mark.parametrize("db", ["lancedb", "milvus"])
def test_lancedb_and_milvus_are_measured_with_their_distance(db, data, tmp_path):
    x, q = data
    if db == "lancedb":
        _needs("lancedb")
        import lancedb
        import pyarrow as pa

        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)
        lancedb.connect(str(tmp_path)).create_table("t", data=pa.table({"id": np.arange(N), "vector": vec}))
        r = live_index_report(f"lancedb://{tmp_path}/t", queries=q, k=K, metric="dot")
        metric = "dot"
    else:
        _needs("pymilvus")
        from pymilvus import MilvusClient

        client = MilvusClient(str(tmp_path / "m.db"))
        client.create_collection("docs", dimension=D, metric_type="L2")
        client.insert("docs", [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)])
        client.close()
        r = live_index_report(f"milvus://{tmp_path / 'm.db'}/docs", queries=q, k=K)
        metric = "euclidean"
    truth = _exact(x, q, K, metric)
    assert r.metric == metric
    np.testing.assert_array_equal(np.sort(r.truth, axis=1), np.sort(truth, axis=1))
    np.testing.assert_allclose(r.recall_per_query_ids, _recall(r.found, truth))  # found: the database's rows
    np.testing.assert_allclose(r.recall_per_query, _recall_by_distance(x, q, r.found, truth, metric))
    assert r.recall_at_k == pytest.approx(1.0)  # both search these 600 vectors exhaustively


def test_bad_queries_and_sources_are_clear_errors(data, low_chroma, tmp_path):
    uri, _ = low_chroma
    with pytest.raises(EmbeddingInputError, match="queries have dimension 3, the collection 16"):
        live_index_report(uri, queries=np.ones((2, 3)), k=K)
    with pytest.raises(EmbeddingInputError, match="k"):
        live_index_report(uri, k=N + 5)
    with pytest.raises(EmbeddingInputError, match="searches LanceDB, Chroma, Qdrant and Milvus"):
        live_index_report(f"hf://{tmp_path}")
    with pytest.raises(EmbeddingInputError, match="metric= applies to LanceDB only"):
        live_index_report(uri, metric="cosine")


def test_cli_live_index(data, low_chroma, tmp_path, capsys):
    uri, _ = low_chroma
    out = tmp_path / "live.json"
    assert cli.main(["live-index", uri, "--k", "5", "--n-queries", "40", "--json", str(out)]) == 0
    assert "LiveIndexReport: live-index health" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["k"] == 5 and d["n_queries"] == 40 and d["database"] == "chroma" and 0 <= d["recall_at_k"] <= 1
    assert "recall_per_query" not in d  # per-query arrays stay out of the JSON
    assert cli.main(["live-index", f"hf://{tmp_path}"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("embgeo: error: the live-index report searches")
    assert cli.main(["live-index", uri, "--sweep", "ef=8"]) == cli.EXIT_BAD_INPUT
    assert "chroma takes no search parameters per query" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main(["live-index", uri, "--sweep", "ef"])
    assert stop.value.code == cli.EXIT_USAGE


def test_a_sweep_of_lancedb_nprobes_scores_each_setting_independently(data, tmp_path):
    _needs("lancedb")
    import lancedb
    import pyarrow as pa

    x, q = data
    tbl = lancedb.connect(str(tmp_path)).create_table(
        "t", data=pa.table({"id": np.arange(N), "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)}))
    try:  # the unified index API of recent LanceDB; the keyword form before it
        from lancedb.index import IvfFlat

        tbl.create_index("vector", config=IvfFlat(distance_type="l2", num_partitions=16))
    except (ImportError, TypeError):
        tbl.create_index(metric="l2", num_partitions=16, index_type="IVF_FLAT")
    r = live_index_report(f"lancedb://{tmp_path}/t", queries=q, k=K, sweep={"nprobes": (1, 16)})
    truth = _exact(x, q, K, "euclidean")
    assert r.metric == "euclidean" and "IvfFlat" in r.settings["indices"]
    assert [row["params"] for row in r.sweep] == [{"nprobes": 1}, {"nprobes": 16}]
    for row in r.sweep:
        answers = [tbl.search(v).nprobes(row["params"]["nprobes"]).limit(K).select(["id"]).to_arrow()
                   .column("id").to_pylist() for v in q]
        assert row["recall_at_k_ids"] == pytest.approx(_recall(answers, truth).mean())
        assert row["recall_at_k"] == pytest.approx(_recall_by_distance(x, q, answers, truth, "euclidean").mean())
        assert row["latency_ms_p50"] <= row["latency_ms_p99"] and row["qps"] > 0
    assert r.sweep[0]["recall_at_k"] < r.sweep[1]["recall_at_k"] == pytest.approx(1.0)  # 1 of 16 lists misses
    with pytest.raises(EmbeddingInputError, match="lancedb searches take nprobes, ef, refine_factor, not hnsw_ef"):
        live_index_report(f"lancedb://{tmp_path}/t", queries=q, k=K, sweep={"hnsw_ef": (8,)})


def test_faiss_runs_side_by_side_on_the_same_queries_and_truth(low_chroma, data):
    uri, _ = low_chroma
    r = live_index_report(uri, k=K, n_queries=30, faiss=("flat", "hnsw"))
    kinds = {s.kind: s for s in r.faiss.settings}
    assert set(kinds) == {"flat", "hnsw"}
    assert kinds["flat"].recall_at_k == pytest.approx(1.0)  # exact search agrees with the shared truth
    assert r.recall_at_k < 0.9  # the database's tiny HNSW, beside faiss's
    with pytest.raises(EmbeddingInputError, match="chroma takes no search parameters per query"):
        live_index_report(uri, k=K, sweep={"ef": (8,)})


def _milvus_doc_id(path, x, metric="L2"):
    """A Milvus Lite collection whose primary key is ``doc_id`` and vector field ``emb``, released."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("doc_id", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=x.shape[1])
    index = client.prepare_index_params()
    index.add_index("emb", metric_type=metric, index_type="FLAT")
    client.create_collection("docs", schema=schema, index_params=index)
    client.insert("docs", [{"doc_id": 1000 + i, "emb": v.tolist()} for i, v in enumerate(x)])
    client.release_collection("docs")
    client.close()
    return f"milvus://{path}/docs"


def test_a_milvus_primary_key_not_called_id_is_matched_by_its_own_name(data, tmp_path):
    _needs("pymilvus")
    x, q = data
    uri = _milvus_doc_id(tmp_path / "m.db", x)
    r = live_index_report(uri, queries=q, k=K)
    truth = _exact(x, q, K, "euclidean")
    np.testing.assert_array_equal(np.sort(r.found, axis=1), np.sort(truth, axis=1))  # ids 1000+ mapped to rows
    assert r.recall_at_k == pytest.approx(1.0) and r.metric == "euclidean"


@pytest.mark.parametrize("where", ["fields", "after_load"])
def test_a_milvus_failure_while_opening_closes_our_client_and_releases(where, data, tmp_path, monkeypatch):
    _needs("pymilvus")
    import pymilvus
    from pymilvus import MilvusClient

    from embgeo.analysis.io import clients as io_clients
    from embgeo.analysis.io import live as io_live

    uri = _milvus_doc_id(tmp_path / "m.db", data[0][:50])
    closed = []
    real_close = MilvusClient.close
    monkeypatch.setattr(MilvusClient, "close", lambda self: (closed.append(self), real_close(self))[1])

    def boom(*args, **kwargs):
        raise EmbeddingInputError("injected")

    if where == "fields":
        monkeypatch.setattr(io_clients, "_milvus_fields", boom)
    else:
        monkeypatch.setattr(io_live, "_metric", boom)  # after load_collection
    with pytest.raises(EmbeddingInputError, match="injected"):
        live_index_report(uri, k=3, n_queries=5)
    assert len(closed) == 1  # the client we opened is closed
    monkeypatch.undo()
    client = pymilvus.MilvusClient(str(tmp_path / "m.db"))
    try:
        assert str(client.get_load_state("docs")["state"]).endswith("NotLoad")  # released again, as we found it
    finally:
        client.close()


def test_tied_copies_of_the_kth_neighbour_count_as_hits(monkeypatch):
    """Planted duplicates: each distinct vector stored 3 times, so the k-th neighbour has tied copies.

    An exact flat search may return any copy; id overlap calls the others misses, the distance rule
    does not. The database here answers exactly but breaks ties towards the *last* copy, deterministically
    unlike exact_knn's order, so id overlap is below 1 and recall by distance is exactly 1.
    """
    import pandas as pd

    from embgeo.analysis import EmbeddingSet
    from embgeo.analysis.index import live as index_live
    from embgeo.analysis.io.live import LiveIndex

    rng = np.random.default_rng(11)
    base = rng.standard_normal((100, D)).astype(np.float32)
    x = np.repeat(base, 3, axis=0)  # rows 3j, 3j+1, 3j+2 are copies
    q = rng.standard_normal((20, D)).astype(np.float32)
    ids = [f"r{i}" for i in range(len(x))]

    def search(v, k):  # exact, ties to the highest row
        d = _distance(x, v, "euclidean")
        order = np.lexsort((-np.arange(len(x)), d))
        return [ids[i] for i in order[:k]]

    eset = EmbeddingSet(x, metadata=pd.DataFrame({"id": ids}))
    fake = LiveIndex("planted", "planted", "euclidean", search, read=lambda progress=None: eset)
    monkeypatch.setattr(index_live, "open_live_index", lambda *args, **kwargs: fake)
    r = live_index_report("planted", queries=q, k=K)
    truth = _exact(x, q, K, "euclidean")
    answers = [[int(i[1:]) for i in search(v, K)] for v in q]
    assert r.recall_at_k == 1.0 and r.recall_min == 1.0
    np.testing.assert_allclose(r.recall_per_query, _recall_by_distance(x, q, answers, truth, "euclidean"))
    np.testing.assert_allclose(r.recall_per_query_ids, _recall(answers, truth))
    assert r.recall_at_k_ids < 0.95  # the copies chosen differ from the exact list's


def _collection_uri(db, x, root):
    """The N x D rows as a real collection of ``db`` (ids: strings for Chroma, integers elsewhere)."""
    _needs({"lancedb": "lancedb", "chroma": "chromadb", "qdrant": "qdrant_client", "milvus": "pymilvus"}[db])
    if db == "lancedb":
        import lancedb
        import pyarrow as pa

        lancedb.connect(str(root)).create_table(
            "t", data=pa.table({"id": np.arange(N), "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)}))
        return f"lancedb://{root}/t"
    if db == "chroma":
        import chromadb

        chromadb.PersistentClient(path=str(root)).create_collection("docs", configuration={"hnsw": {"space": "l2"}}).add(
            ids=[f"r{i}" for i in range(N)], embeddings=x)
        return f"chroma://{root}/docs"
    if db == "qdrant":
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(root / "q"))
        client.create_collection("docs", vectors_config=models.VectorParams(size=D, distance=models.Distance.EUCLID))
        client.upsert("docs", points=[models.PointStruct(id=i, vector=v.tolist()) for i, v in enumerate(x)])
        client.close()
        return f"qdrant+local://{root / 'q'}/docs"
    from pymilvus import MilvusClient

    client = MilvusClient(str(root / "m.db"))
    client.create_collection("docs", dimension=D, metric_type="L2")
    client.insert("docs", [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)])
    client.close()
    return f"milvus://{root / 'm.db'}/docs"


@pytest.mark.parametrize("db", ["lancedb", "chroma", "qdrant", "milvus"])
def test_a_set_read_before_stands_in_for_a_new_read_only_while_it_matches_the_collection(db, data, tmp_path):
    """data=: the dashboard's set is used instead of reading the collection again, once its row count and
    a sample of its rows, looked up by id in the database, match; a transformed or partial set is not."""
    from embgeo.analysis.io import load

    x, q = data
    uri = _collection_uri(db, x, tmp_path)
    plain = live_index_report(uri, queries=q, k=K)
    given = load(uri)
    reused = live_index_report(uri, queries=q, k=K, data=given)
    assert plain.vectors_from == "read" and reused.vectors_from.startswith("the given set (600 rows")
    np.testing.assert_array_equal(reused.truth, plain.truth)
    np.testing.assert_array_equal(reused.recall_per_query_ids, plain.recall_per_query_ids)

    changed = given.with_vectors(given.vectors * 1.5)  # same ids and rows, other vectors (a transform)
    stale = live_index_report(uri, queries=q, k=K, data=changed)
    assert "differs from the collection's vector" in stale.vectors_from
    np.testing.assert_array_equal(stale.truth, plain.truth)  # measured on the collection's own vectors
    part = live_index_report(uri, queries=q, k=K, data=given.subset(np.arange(N - 1)))
    assert f"the collection holds {N} rows, the set {N - 1}" in part.vectors_from


def test_a_set_from_another_source_is_refused(data, low_chroma, tmp_path):
    from embgeo.analysis import EmbeddingSet

    x, q = data
    uri, _ = low_chroma
    elsewhere = EmbeddingSet(x, source="lancedb:///somewhere/else")
    with pytest.raises(EmbeddingInputError, match="data= was read from lancedb:///somewhere/else, not from chroma://"):
        live_index_report(uri, queries=q, k=K, data=elsewhere)
    with pytest.raises(EmbeddingInputError, match="data= takes the EmbeddingSet"):
        live_index_report(uri, queries=q, k=K, data=x)
