"""Every docstring example in embgeo runs, and shows what it says (the examples are documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest


def _modules() -> list[str]:
    """Every module of the three packages (their folders sit apart in a source checkout)."""
    names = set()
    for package in ("embgeo", "embgeo.analysis", "embgeo.widgets"):
        root = importlib.import_module(package)
        names.add(package)
        names.update(info.name for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."))
    return sorted(names)


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    # only the module's own objects, not those it re-exports (each is tested in its home module)
    return [t for t in finder.find(module, extraglobs={"np": np}) if t.examples and
            getattr(t, "filename", None) == getattr(module, "__file__", None)]


MODULES = [name for name in _modules() if not name.endswith("__main__")]


def test_the_suite_sees_the_examples():
    found = sum(len(t.examples) for name in MODULES for t in _examples(name))
    assert found >= 150, found  # the docstrings hold about 160 examples; a broken finder must not pass


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
