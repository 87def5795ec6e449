"""A least-recently-used cache bounded by bytes, for the dashboard's results and transformed copies.

Going back to a setting seen before is free while it is cached; a long session that tries many
transforms keeps at most ``budget`` bytes of them (each transformed copy is as large as the data),
dropping the ones used longest ago. Sizes are estimated by walking the value: arrays, result
dataclasses, containers, pandas tables and embedding sets (their vectors and cached neighbour tables),
each buffer counted once, and never the dashboard's own data, which the controller holds anyway.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np

from embgeo.analysis import EmbeddingSet


def default_budget() -> int:
    """1 GiB, or a sixteenth of the machine's memory when that is less (at least 128 MiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not a POSIX system: assume 8 GiB
        total = 8 * 2**30
    return int(max(128 * 2**20, min(2**30, total // 16)))


def _buffer(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def approx_nbytes(value, *, exclude: set[int] | None = None) -> int:
    """Bytes held by ``value``'s arrays and tables; buffers whose id is in ``exclude`` are not counted."""
    seen = set(exclude or ())
    total = 0
    stack = [value]
    while stack:
        obj = stack.pop()
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, np.generic)):
            continue
        if isinstance(obj, np.ndarray):
            base = _buffer(obj)
            if id(base) not in seen:
                seen.add(id(base))
                total += base.nbytes
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, EmbeddingSet):
            stack += [obj.vectors, obj.metadata, obj.weights, *obj.cached_tables()]
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack += [getattr(obj, f.name) for f in dataclasses.fields(obj)]
        elif isinstance(obj, dict):
            stack += list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += list(obj)
        elif hasattr(obj, "memory_usage") and hasattr(obj, "columns"):  # a pandas DataFrame
            total += int(obj.memory_usage(index=True, deep=False).sum())
    return total


class ByteBudgetCache:
    """Values by key, the least recently used dropped once their estimated bytes exceed ``budget``.

    Parameters
    ----------
    budget : int
        Bytes the cached values may hold together.
    exclude : iterable of arrays
        Buffers not counted (the data every value shares).
    """

    def __init__(self, budget: int, *, exclude=()):
        self.budget = int(budget)
        self._exclude = {id(_buffer(np.asarray(a))) for a in exclude}
        self._items: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self.nbytes = 0

    def __contains__(self, key) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key, compute: Callable[[], object]):
        """The cached value of ``key``, else ``compute()``, kept unless it alone exceeds the budget."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key][0]
        value = compute()
        size = approx_nbytes(value, exclude=self._exclude)
        if size <= self.budget:
            self._items[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped
        return value

    def keys(self) -> list:
        """The cached keys, least recently used first."""
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0
