"""One LocalCluster of two single-threaded worker processes for every Dask test in this folder: its
workers import and compile the kernels once (the first report on a fresh cluster takes seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def client():
    pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")
    from embgeo.analysis.distributed import connect

    with connect("local:2") as c:
        yield c
