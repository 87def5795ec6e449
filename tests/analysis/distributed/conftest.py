"""One LocalCluster of two single-threaded worker processes for every Dask test in this folder: its
workers import and compile the kernels once (the first report on a fresh cluster takes seconds). It is
closed when the folder's tests end (package scope): left running, its client's monitor threads kept
allocating in the test process for the rest of the suite, which the memory-bound tests measure."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def client():
    pytest.importorskip("distributed", reason="the Dask engine is the optional extra embgeo[dask]")
    from embgeo.analysis.distributed import connect

    with connect("local:2") as c:
        yield c
