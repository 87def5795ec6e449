"""The machine a benchmark ran on, written beside every result: CPU, cores, date, library versions."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(*libraries: str) -> dict:
    """Date (UTC), CPU model, logical and usable cores, platform, Python, and each library's version."""
    info = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
    }
    for name in libraries:
        info[name] = importlib.import_module(name).__version__
    return info
