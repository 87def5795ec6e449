"""Where the products of a search run (NumPy, torch on the CPU, torch on the GPU), and how a tile of
scores is folded into the running top-k lists on each.

On the host the folds are numba kernels (:mod:`._fold_kernels`) and the products run in numba's
thread pool (:func:`numba_thread_pool`); on the GPU a tile is folded with torch operations.
"""

from __future__ import annotations

import contextlib
import warnings

import numba
import numpy as np

from .._core import EmbeddingInputError
from ._fold_kernels import fold_tile as _host_fold_tile, tile_product


def resolve_backend(backend: str = "auto") -> str:
    """Map ``"auto"`` to ``"torch-cuda"`` when a GPU is visible, else ``"torch-cpu"``."""
    if backend in ("numpy", "torch-cpu", "torch-cuda"):
        if backend == "torch-cuda":
            import torch

            if not torch.cuda.is_available():
                raise EmbeddingInputError("backend='torch-cuda' was asked for but torch sees no CUDA device")
        return backend
    if backend == "torch":
        backend = "auto"
    if backend != "auto":
        raise EmbeddingInputError(f"unknown backend {backend!r}; choose auto, numpy, torch-cpu or torch-cuda")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "numpy"
    return "torch-cuda" if torch.cuda.is_available() else "torch-cpu"



class Ops:
    """The few array operations the tiled kernel needs, for NumPy or for torch on one device."""

    def __init__(self, backend: str):
        self.backend = backend
        self._scratch = None  # host memory reused by every score tile (see matmul_t)
        self.numba_products = False  # host products by numba's workers (see numba_thread_pool)
        if backend.startswith("torch"):
            import torch

            self.torch = torch
            self.device = torch.device("cuda" if backend == "torch-cuda" else "cpu")

    def put(self, a: np.ndarray):
        if self.backend == "numpy":
            return np.ascontiguousarray(a, dtype=np.float32)
        with warnings.catch_warnings():  # read-only views are fine: the kernel never writes to inputs
            warnings.simplefilter("ignore", UserWarning)
            t = self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return t.to(self.device, non_blocking=True)

    def put_ids(self, a: np.ndarray):
        a = np.ascontiguousarray(a, dtype=np.int64)
        return a if self.backend == "numpy" else self.torch.from_numpy(a).to(self.device)

    def get(self, t) -> np.ndarray:
        return t if self.backend == "numpy" else t.cpu().numpy()

    def matmul_t(self, a, b):
        """``a @ b.T``; on the host, into one reused buffer with NumPy's BLAS.

        Two measured reasons (2-core EPYC, 4096 x 4096 x 384 tiles): OpenBLAS sgemm runs at ~200
        GFLOP/s against ~150 for torch's CPU matmul, and writing into memory already mapped avoids
        the page faults of a fresh 64-256 MB tile per step. torch tensors on the CPU share memory
        with NumPy, so the torch ops that follow (top-k) read the same buffer without a copy. The
        returned tile is only valid until the next call.
        """
        if self.backend == "torch-cuda":
            return a @ b.T
        rows, cols = a.shape[0], b.shape[0]
        if self._scratch is None or self._scratch.size < rows * cols:
            self._scratch = None  # let the old buffer go before taking the larger one
            self._scratch = np.empty(rows * cols, dtype=np.float32)
        out = self._scratch[:rows * cols].reshape(rows, cols)
        a_np, b_np = (a, b) if self.backend == "numpy" else (a.numpy(), b.numpy())
        if self.numba_products:
            tile_product(a_np, b_np, out, numba.get_num_threads())
        else:
            np.matmul(a_np, b_np.T, out=out)
        return out if self.backend == "numpy" else self.torch.from_numpy(out)

    def scores(self, q, c, c_sqnorm, metric):
        """Higher is nearer: <u, v> (cosine, dot) or 2<x, y> - |y|^2 (euclidean)."""
        s = self.matmul_t(q, c)
        if metric == "euclidean":
            s *= 2
            s -= c_sqnorm[None, :]
        return s

    def sqnorm(self, c):
        return (c * c).sum(1)

    def topk(self, s, k):
        """Top k columns of each row (values, positions), unsorted."""
        if self.backend == "numpy":
            if k >= s.shape[1]:
                pos = np.broadcast_to(np.arange(s.shape[1]), s.shape).copy()
            else:
                pos = np.argpartition(-s, k - 1, axis=1)[:, :k]
            return np.take_along_axis(s, pos, axis=1), pos
        k = min(k, s.shape[1])
        vals, pos = self.torch.topk(s, k, dim=1, sorted=False)
        return vals, pos

    def cat(self, a, b):
        return np.concatenate([a, b], axis=1) if self.backend == "numpy" else self.torch.cat([a, b], dim=1)

    def take(self, a, pos):
        return np.take_along_axis(a, pos, axis=1) if self.backend == "numpy" else self.torch.gather(a, 1, pos)

    def full(self, shape, value, dtype):
        if self.backend == "numpy":
            return np.full(shape, value, dtype=dtype)
        tdtype = {np.float32: self.torch.float32, np.int64: self.torch.int64}[dtype]
        return self.torch.full(shape, value, dtype=tdtype, device=self.device)

    def arange(self, start, stop):
        if self.backend == "numpy":
            return np.arange(start, stop, dtype=np.int64)
        return self.torch.arange(start, stop, dtype=self.torch.int64, device=self.device)

    def mask_self(self, s, q_ids, c_start):
        """Set the score of each query against its own corpus row to -inf; return those cells."""
        c_stop = c_start + s.shape[1]
        if self.backend == "numpy":
            rows = np.flatnonzero((q_ids >= c_start) & (q_ids < c_stop))
        else:
            rows = ((q_ids >= c_start) & (q_ids < c_stop)).nonzero().squeeze(1)
        cols = q_ids[rows] - c_start
        s[rows, cols] = -np.inf
        return rows, cols

    def sum_axis(self, d, axis):
        """Sums along ``axis`` as float64. torch sums float32 tiles by cascade (pairwise) summation,
        accurate to ~1e-6 relative and 20-50x faster than summing with dtype=float64."""
        if self.backend == "numpy":
            return d.sum(axis, dtype=np.float64)
        return d.sum(axis).double()

    def to_distances_(self, s, metric, q_sqnorm=None):
        """Overwrite a score tile with the distances it implies, in place; return the tile.

        Runs after the tile's top-k has been taken, so no second n_q x n_c buffer is allocated
        (at 1,000 x 50,000 the allocations and masks cost three times the matrix product).
        Scores are <u, v> of unit vectors (cosine: distance sqrt(2 - 2s)), 2<q, c> - |c|^2 with
        ``q_sqnorm`` given (euclidean: sqrt(|q|^2 - s)), or -|x - y|^2 with ``q_sqnorm`` None
        (the symmetric euclidean tile). Rounding can push the squared distance below zero; it is
        clamped. Callers set masked (self) cells to a score meaning distance zero beforehand.
        """
        if self.backend == "numpy":
            if metric == "cosine":
                np.minimum(s, 1.0, out=s)
                s *= -2.0
                s += 2.0
            else:
                np.negative(s, out=s)
                if q_sqnorm is not None:
                    s += q_sqnorm[:, None]
                np.maximum(s, 0.0, out=s)
            return np.sqrt(s, out=s)
        if metric == "cosine":
            return s.clamp_(max=1.0).mul_(-2.0).add_(2.0).sqrt_()
        s.neg_()
        if q_sqnorm is not None:
            s.add_(q_sqnorm[:, None])
        return s.clamp_(min=0.0).sqrt_()



def merge_topk(ops, best_s, best_i, rows: slice, vals, cand_i, k):
    """Fold a block's candidates into the running top k of ``rows``."""
    top_s, top_pos = ops.topk(ops.cat(best_s[rows], vals), k)
    best_i[rows] = ops.take(ops.cat(best_i[rows], cand_i), top_pos)
    best_s[rows] = top_s


#: How host tiles are folded: "numba" (one thresholded pass, :mod:`._fold_kernels`) or "array" (the
#: torch comparison/nonzero or dense top-k below, which the GPU always uses; tests run both on the CPU).
HOST_FOLD = "numba"


def host_folds(ops: "Ops") -> bool:
    """True when tiles are folded by the numba kernels (on the host, unless HOST_FOLD says otherwise)."""
    return ops.backend != "torch-cuda" and HOST_FOLD == "numba"

#: Above this share of a tile's cells clearing their row's threshold, a dense top-k is cheaper.
SPARSE_FOLD_MAX_SHARE = 1 / 16


def fold_tile(ops, best_s, best_i, kth, s, axis: int, tgt0: int, cand0: int, k: int) -> None:
    """Fold symmetric tile ``s`` into the running top k of the points it serves as candidates for.

    ``axis=1``: the targets are the tile's rows (points ``tgt0 + i``) and the candidates its columns
    (``cand0 + j``); ``axis=0``: the other way round. ``kth`` holds each target's current k-th best
    score: only cells above it can enter the list. After a target has met a few blocks that is a few
    per cent of the tile. On the host a numba kernel reads the tile once and admits those cells
    directly (:mod:`._fold_kernels`). On the GPU (and on the host with ``HOST_FOLD = "array"``) they are
    picked by one comparison and merged sparsely, where a dense top-k costs 2x the comparison along
    rows and 4x along columns (a strided reduction); cold lists (the first blocks) take the dense
    top-k, as does the NumPy backend there.
    """
    if host_folds(ops):  # one pass on the host, see _fold_kernels
        _host_fold_tile(ops.get(s), ops.get(best_s), ops.get(best_i), ops.get(kth), axis, tgt0, cand0)
        return
    view = s if axis == 1 else s.T
    tgt = slice(tgt0, tgt0 + view.shape[0])
    if ops.backend != "numpy":
        torch = ops.torch
        thr = kth[tgt]
        mask = s > (thr[:, None] if axis == 1 else thr[None, :])
        n_hits = int(torch.count_nonzero(mask))  # (a bool .sum() is 40x slower)
        if n_hits == 0:
            return
        if n_hits <= SPARSE_FOLD_MAX_SHARE * s.numel():
            i, j = mask.nonzero(as_tuple=True)
            scores = s[i, j]
            t_local, c_local = (i, j) if axis == 1 else (j, i)
            order = torch.argsort(t_local)
            t_local, cand, scores = t_local[order], c_local[order] + cand0, scores[order]
            rows, counts = torch.unique_consecutive(t_local, return_counts=True)
            # Lay each target's candidates out in one padded row, then top-k against its list.
            first = torch.cumsum(counts, 0) - counts
            slot = torch.arange(len(t_local), device=s.device) - torch.repeat_interleave(first, counts)
            which = torch.repeat_interleave(torch.arange(len(rows), device=s.device), counts)
            width = int(counts.max())
            pad_s = torch.full((len(rows), width), -float("inf"), dtype=s.dtype, device=s.device)
            pad_i = torch.full((len(rows), width), -1, dtype=torch.int64, device=s.device)
            pad_s[which, slot] = scores
            pad_i[which, slot] = cand
            rows = rows + tgt0
            all_s = torch.cat([best_s[rows], pad_s], 1)
            top_s, top_pos = torch.topk(all_s, k, dim=1, sorted=False)
            best_i[rows] = torch.gather(torch.cat([best_i[rows], pad_i], 1), 1, top_pos)
            best_s[rows] = top_s
            kth[rows] = top_s.min(1).values
            return
    vals, pos = ops.topk(view, k)
    merge_topk(ops, best_s, best_i, tgt, vals, ops.arange(cand0, cand0 + view.shape[1])[pos], k)
    if ops.backend != "numpy":
        kth[tgt] = best_s[tgt].min(1).values


@contextlib.contextmanager
def numba_thread_pool(ops=None):
    """Run host products in numba's workers (those of ``ops``, if given), each with one BLAS thread.

    A search that alternates NumPy's multi-threaded sgemm with numba's parallel folds keeps two
    thread pools on the same cores, and OpenBLAS's workers spin for a while after every product,
    taking cores from the fold that follows. With BLAS limited to one thread and each numba worker
    multiplying its share of the rows (:func:`._fold_kernels.tile_product`), one pool does everything.
    """
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS numba calls: loaded before the limit
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        if ops is not None:
            ops.numba_products = True
        try:
            yield
        finally:
            if ops is not None:
                ops.numba_products = False


