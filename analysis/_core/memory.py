"""How much memory a piece of work may take: the ``memory_limit`` every large computation accepts.

The default is half of the memory the system reports as available (``MemAvailable``: free memory plus
what the page cache would give back), read when the work starts, so a report on a machine that is
busy elsewhere sizes itself to what is left. A memory-mapped input's own pages are not counted: the
kernel evicts them as needed.
"""

from __future__ import annotations

import os

from .validation import EmbeddingInputError

#: Assumed available memory where the system does not say (8 GiB).
FALLBACK_AVAILABLE = 8 * 2**30


def available_memory() -> int:
    """Bytes the system can give this process now (Linux ``MemAvailable``; else free pages, else 8 GiB)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return FALLBACK_AVAILABLE


def resolve_memory_limit(memory_limit) -> int:
    """``memory_limit`` in bytes: as given (a positive number), or half of :func:`available_memory`."""
    if memory_limit is None:
        return available_memory() // 2
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, float)) or not memory_limit > 0:
        raise EmbeddingInputError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")
    return int(memory_limit)


def size_text(nbytes: float) -> str:
    """Bytes as a short figure for messages: "1.4 GiB", or "12.5 MiB" below 1 GiB (where a GiB figure
    would read 0.0)."""
    if nbytes < 2**30:
        return f"{nbytes / 2**20:.1f} MiB"
    return f"{nbytes / 2**30:.1f} GiB"
